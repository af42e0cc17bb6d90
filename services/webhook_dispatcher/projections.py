"""Read models of the dispatcher's own log: none.

The log holds only `webhook.delivery_attempted` events, which nothing reads back. The `predictions` view is a
cache of the scheduler's lifecycle events, not of this log; rebuilding it means replaying SCHEDULER_EVENTS
through a fresh consumer, and that would queue every webhook again, so `rebuild-projections` leaves it alone.
"""

from __future__ import annotations

from libs.eventstore.projections import Projection

PROJECTIONS: list[Projection] = []
