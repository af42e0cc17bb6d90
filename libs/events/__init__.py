"""Event envelope and metadata shared by every producer and consumer."""

from libs.events.envelope import Envelope, EventMetadata, new_event

__all__ = ["Envelope", "EventMetadata", "new_event"]
