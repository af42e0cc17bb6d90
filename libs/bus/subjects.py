"""Every stream, subject, durable consumer and bucket name, in one place."""

import hashlib
import re
from dataclasses import dataclass

_UNSAFE_TOKEN = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    work_queue: bool = False
    # Limits (None: unlimited); the oldest messages are dropped first.
    max_age_seconds: float | None = None
    max_bytes: int | None = None
    max_msgs_per_subject: int | None = None


SCHEDULER_EVENTS = StreamSpec("SCHEDULER_EVENTS", ("scheduler.events.>",))
REGISTRY_EVENTS = StreamSpec("REGISTRY_EVENTS", ("registry.events.>",))
RUNNER_EVENTS = StreamSpec("RUNNER_EVENTS", ("runner.events.>",))
WEBHOOK_EVENTS = StreamSpec("WEBHOOK_EVENTS", ("webhook_dispatcher.events.>",))
RUNNER_JOBS = StreamSpec("RUNNER_JOBS", ("runner.jobs.>",), work_queue=True)
# What a running prediction streams (iterator items, log chunks, then error/done), for Server-Sent Events;
# transient like Replicate's stream URLs, so bounded in age and size.
PREDICTION_STREAMS = StreamSpec(
    "PREDICTION_STREAMS",
    ("stream.prediction.*",),
    max_age_seconds=3600.0,
    max_bytes=1024 * 1024 * 1024,
    max_msgs_per_subject=100_000,
)

ALL_STREAMS = (
    SCHEDULER_EVENTS, REGISTRY_EVENTS, RUNNER_EVENTS, WEBHOOK_EVENTS, RUNNER_JOBS, PREDICTION_STREAMS,
)

PREDICTION_EVENTS = "scheduler.events.prediction.>"
# Tagged subjects: events of predictions with a webhook end in `.webhook`, so the webhook dispatcher's consumer
# filters on them and a prediction without one never reaches it at all.
WEBHOOK_TAG = "webhook"
WEBHOOK_PREDICTION_EVENTS = f"scheduler.events.prediction.*.{WEBHOOK_TAG}"
# Terminal events carry what a usage record needs, so billing takes nothing else.
TERMINAL_PREDICTION_EVENTS = tuple(
    subject
    for status in ("succeeded", "failed", "canceled")
    for subject in (f"scheduler.events.prediction.{status}", f"scheduler.events.prediction.{status}.*")
)
RUNNER_PREDICTION_EVENTS = "runner.events.prediction.>"
# Registry events that change who a token authenticates as (every gateway drops its cached answers).
REGISTRY_TOKEN_EVENTS = "registry.events.token.>"
REGISTRY_MEMBERSHIP_EVENTS = "registry.events.membership.>"
REGISTRY_VERSION_DELETED = "registry.events.version.deleted"
REGISTRY_MODEL_DELETED = "registry.events.model.deleted"

# Object store buckets: packaged model directories (key = version id), uploaded files (key = file id), files
# models returned (key = `<prediction id>/<name>`), values too large for one NATS message (libs.blobs.spill).
# A bucket named in OBJECT_STORE_TTLS drops its objects that many seconds after they were stored.
VERSION_PACKAGES_BUCKET = "cogwheel-versions"
FILES_BUCKET = "cogwheel-files"
OUTPUTS_BUCKET = "cogwheel-outputs"
SPILL_BUCKET = "cogwheel-spilled"
# Stream items too large for one NATS message: transient like the stream itself, so they expire with it.
STREAM_SPILL_BUCKET = "cogwheel-stream-spilled"
OBJECT_STORE_TTLS = {STREAM_SPILL_BUCKET: PREDICTION_STREAMS.max_age_seconds}
# Key-value bucket of live runner nodes (key = runner id), refreshed by each node's heartbeat.
RUNNERS_BUCKET = "cogwheel-runners"

# Durable consumers of the event streams. Each name is also the consumer's key in its service's `tracking`
# table, so renaming one would apply again every event it has applied.
GATEWAY_PREDICTIONS_DURABLE = "gateway-predictions"
SCHEDULER_RUNNER_EVENTS_DURABLE = "scheduler-runner-events"
SCHEDULER_INSTANCE_EVENTS_DURABLE = "scheduler-instance-events"
WEBHOOK_DELIVERIES_DURABLE = "webhook_dispatcher-deliveries"
BILLING_USAGE_DURABLE = "billing-usage"


def runner_prediction_report_subject(kind: str) -> str:
    """A runner's report on a prediction (`started`, `progress`, `completed`), in RUNNER_EVENTS."""
    return f"runner.events.prediction.{kind}"


def runner_instance_report_subject(kind: str) -> str:
    """A runner node's report on an instance (`booting`, `ready`, `stopped`, `failed`), in RUNNER_EVENTS."""
    return f"runner.events.instance.{kind}"


def event_subject(service: str, event_type: str, tag: str | None = None) -> str:
    """`prediction.created` from the scheduler travels on `scheduler.events.prediction.created` (tagged:
    `scheduler.events.prediction.created.webhook`)."""
    return f"{service}.events.{event_type}.{tag}" if tag else f"{service}.events.{event_type}"


def runner_jobs(hardware: str) -> str:
    return f"runner.jobs.{hardware}"


def runner_durable(hardware: str) -> str:
    """The one durable consumer through which the runners of ``hardware`` pull their jobs."""
    return f"runner-{hardware}"


def queue_key(version_id: str, deployment: str | None = None) -> str:
    """The key of a prediction queue: one per deployment (``owner/name``), else one per version.

    Keys are single subject tokens and valid durable names (letters, digits, ``-``, ``_``); a deployment's
    name is made safe and suffixed with a digest of the exact name, so two names never share a queue.
    """
    if deployment:
        safe = _UNSAFE_TOKEN.sub("_", deployment.replace("/", "--"))[:80]
        return f"d-{safe}-{hashlib.sha256(deployment.encode()).hexdigest()[:8]}"
    return f"v-{_UNSAFE_TOKEN.sub('_', version_id)[:100]}"


def runner_queue(label: str, key: str) -> str:
    """Subject of one queue's jobs in RUNNER_JOBS: only the instances placed for that queue consume it."""
    return f"runner.jobs.{label}.{key}"


def runner_queue_durable(label: str, key: str) -> str:
    """The durable consumer of one queue (created by the scheduler; instances pull through it)."""
    return f"q-{label}-{key}"


# Core subject on which the scheduler commands one runner node (load / unload an instance), request-reply.
def runner_node_commands(node: str) -> str:
    return f"runner.node.{node}.command"


RUNNER_NODE_COMMANDS = "runner.node.*.command"
# Instance reports of runner nodes (booting phases, ready, stopped, failed) in RUNNER_EVENTS.
RUNNER_INSTANCE_EVENTS = "runner.events.instance.>"


# Core (non-JetStream) subject on which the scheduler asks every runner to stop a prediction.
RUNNER_CANCEL = "runner.control.cancel"


def prediction_stream(prediction_id: str) -> str:
    """Subject of one prediction's stream in PREDICTION_STREAMS."""
    return f"stream.prediction.{prediction_id}"
