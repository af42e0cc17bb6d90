"""The event log: append with optimistic concurrency, outbox, consumer tracking, projections."""

from libs.eventstore.errors import ConcurrencyError
from libs.eventstore.store import EventStore, OutboxMessage, Transaction

__all__ = ["ConcurrencyError", "EventStore", "OutboxMessage", "Transaction"]
