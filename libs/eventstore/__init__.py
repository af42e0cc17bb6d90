"""The event log: append with optimistic concurrency, outbox, consumer tracking, projections."""

from libs.eventstore.errors import AlreadyTracked, ConcurrencyError
from libs.eventstore.store import EventStore, OneStatement, OutboxMessage, Transaction

__all__ = ["AlreadyTracked", "ConcurrencyError", "EventStore", "OneStatement", "OutboxMessage", "Transaction"]
