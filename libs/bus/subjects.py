"""Every stream and subject name, in one place."""

from dataclasses import dataclass


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    work_queue: bool = False


SCHEDULER_EVENTS = StreamSpec("SCHEDULER_EVENTS", ("scheduler.events.>",))
REGISTRY_EVENTS = StreamSpec("REGISTRY_EVENTS", ("registry.events.>",))
RUNNER_EVENTS = StreamSpec("RUNNER_EVENTS", ("runner.events.>",))
WEBHOOK_EVENTS = StreamSpec("WEBHOOK_EVENTS", ("webhook_dispatcher.events.>",))
BILLING_EVENTS = StreamSpec("BILLING_EVENTS", ("billing.events.>",))
RUNNER_JOBS = StreamSpec("RUNNER_JOBS", ("runner.jobs.>",), work_queue=True)

ALL_STREAMS = (SCHEDULER_EVENTS, REGISTRY_EVENTS, RUNNER_EVENTS, WEBHOOK_EVENTS, BILLING_EVENTS, RUNNER_JOBS)

PREDICTION_EVENTS = "scheduler.events.prediction.>"
RUNNER_PREDICTION_EVENTS = "runner.events.prediction.>"
VERSION_PACKAGES_BUCKET = "cogwheel-versions"


def event_subject(service: str, event_type: str) -> str:
    """`prediction.created` from the scheduler travels on `scheduler.events.prediction.created`."""
    return f"{service}.events.{event_type}"


def runner_jobs(hardware: str) -> str:
    return f"runner.jobs.{hardware}"
