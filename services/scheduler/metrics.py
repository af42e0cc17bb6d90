"""`/metrics` of the scheduler in Prometheus text format, computed from its event log and `work` table.

Every figure is derived from what the log and the table hold, so each scheduler replica answers the same.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import text

from libs.eventstore import EventStore
from libs.predictions import ENDED_EVENT_BY_STATUS, PredictionStatus
from services.scheduler.adapters import work_postgres as work
from services.scheduler.control import Controller

BOOT_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


async def render(controller: Controller, store: EventStore, now: datetime) -> str:
    await controller.catch_up()
    items = await work.all_work(store)
    lines: list[str] = []

    lines += ["# HELP cogwheel_queue_depth Predictions waiting in a queue (not started).",
              "# TYPE cogwheel_queue_depth gauge",
              "# HELP cogwheel_queue_oldest_age_seconds Age of the oldest waiting prediction of a queue.",
              "# TYPE cogwheel_queue_oldest_age_seconds gauge"]
    depth: Counter[tuple[str, str]] = Counter()
    oldest: dict[tuple[str, str], float] = {}
    running: Counter[tuple[str, str]] = Counter()
    for item in items:
        key = (item.label, item.queue)
        if item.started_at is None:
            depth[key] += 1
            oldest[key] = max(oldest.get(key, 0.0), (now - item.created_at).total_seconds())
        else:
            running[key] += 1
    for (label, queue), count in sorted(depth.items()):
        labels = f'label="{_label(label)}",queue="{_label(queue)}"'
        lines.append(f"cogwheel_queue_depth{{{labels}}} {count}")
        lines.append(f"cogwheel_queue_oldest_age_seconds{{{labels}}} {oldest[(label, queue)]:.3f}")

    lines += ["# HELP cogwheel_instances Model instances by state.", "# TYPE cogwheel_instances gauge"]
    states = Counter(instance.state for instance in controller.instances.values())
    for state in ("requested", "placed", "booting", "ready", "stopping", "stopped", "failed"):
        lines.append(f'cogwheel_instances{{state="{state}"}} {states.get(state, 0)}')

    boots = sorted(i.boot_time for i in controller.instances.values() if i.boot_time is not None)
    lines += ["# HELP cogwheel_cold_boot_seconds Time from an instance's request to its being ready.",
              "# TYPE cogwheel_cold_boot_seconds histogram"]
    for bound in BOOT_BUCKETS:
        lines.append(f'cogwheel_cold_boot_seconds_bucket{{le="{bound:g}"}} {sum(1 for b in boots if b <= bound)}')
    lines.append(f'cogwheel_cold_boot_seconds_bucket{{le="+Inf"}} {len(boots)}')
    lines.append(f"cogwheel_cold_boot_seconds_sum {sum(boots):.3f}")
    lines.append(f"cogwheel_cold_boot_seconds_count {len(boots)}")

    lines += ["# HELP cogwheel_predictions Predictions by status (ended ones: since the log began).",
              "# TYPE cogwheel_predictions gauge"]
    async with store.engine.connect() as conn:
        rows = (await conn.execute(text(
            f"SELECT type, count(*) AS n FROM {store.schema}.events WHERE type = ANY(:types) GROUP BY type"),
            {"types": [event.TYPE for event in ENDED_EVENT_BY_STATUS.values()]})).all()
    ended = {row.type: row.n for row in rows}
    lines.append(f'cogwheel_predictions{{status="{PredictionStatus.STARTING}"}} {sum(depth.values())}')
    lines.append(f'cogwheel_predictions{{status="{PredictionStatus.PROCESSING}"}} {sum(running.values())}')
    for status, event in ENDED_EVENT_BY_STATUS.items():
        lines.append(f'cogwheel_predictions{{status="{status}"}} {ended.get(event.TYPE, 0)}')
    return "\n".join(lines) + "\n"
