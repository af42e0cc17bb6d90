"""Scheduler settings."""

from libs.settings import ServiceSettings


class SchedulerSettings(ServiceSettings):
    service_name: str = "scheduler"
    grpc_port: int = 50052
    registry_addr: str = "127.0.0.1:50051"
    # How often due Cancel-After deadlines are looked for.
    deadline_sweep_interval: float = 1.0
    # The runners' public key (base64 X25519): secret inputs are sealed with it before they are stored or
    # queued. Without it, predictions that carry secret values are refused.
    secrets_public_key: str = ""
    # Data retention: an API prediction's input, output, logs and files are removed this long after it ends.
    prediction_retention_seconds: float = 3600.0
    # How often due removals are looked for.
    retention_sweep_interval: float = 5.0
    # The gateway's public origin: inputs that are its `/v1/files/<id>` URLs name uploads to remove with the data.
    public_url: str = ""
    # Instances: how often the control loop places, scales and commands them.
    control_interval: float = 0.5
    # An instance idle this long is stopped (scale to zero) unless a deployment's min_instances keeps it.
    scale_to_zero_seconds: float = 300.0
    # An extra instance of a queue (beyond the one it needs) idle this long is stopped.
    scale_in_seconds: float = 30.0
    # Predictions waiting this long with no free slot make the queue scale out.
    scale_out_after_seconds: float = 1.0
    # Instances of one version (or deployment without max_instances) at most.
    max_instances_per_version: int = 4
    # A prediction whose hardware no runner node offers fails after waiting this long.
    no_hardware_timeout_seconds: float = 600.0
    # The scheduler fails a prediction running longer than this (plus a minute), should its node not.
    predict_timeout: float = 1800.0
    # Job queues: how long an unacknowledged job (a dead node's) waits before another instance takes it, and
    # how many runs a job gets (the runners' COGWHEEL_ACK_WAIT and COGWHEEL_JOB_MAX_DELIVER).
    ack_wait: float = 10.0
    job_max_deliver: int = 5
    # Instances that stay booting longer than this are given up.
    boot_timeout_seconds: float = 900.0
    # Boots of one queue that fail in a row are retried after this, doubling each time up to the maximum.
    boot_backoff_seconds: float = 10.0
    boot_backoff_max_seconds: float = 300.0
    # A control tick that takes longer is abandoned (and logged); the next one starts afresh.
    control_tick_timeout: float = 30.0
    # A runner node absent from the heartbeat bucket this long is lost: its instances are placed elsewhere and
    # the predictions it had started fail naming it.
    node_lost_seconds: float = 10.0
    # Fair share between accounts on one queue: the queue counts as backed up once it has more jobs waiting
    # than the larger of these (a floor, and so many per prediction it runs); an account with its share of
    # them then has its further jobs held by the scheduler and released in turn as the queue drains.
    fair_share_min_backlog: int = 4
    fair_share_backlog_per_running: float = 2.0
    # An account alone in a queue is held only beyond this many waiting jobs: with nobody to share with,
    # holding would only slow it; the bound is how far back an account arriving later can find itself.
    fair_share_solo_backlog: int = 64
