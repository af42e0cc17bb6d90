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
