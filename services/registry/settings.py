"""Registry settings, read from COGWHEEL_* environment variables."""

from libs.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "registry"
    # Optional only so that `rebuild-projections`, which never touches NATS, runs with just a database URL;
    # serving refuses to start without it.
    nats_url: str | None = None  # type: ignore[assignment]
    grpc_host: str = "0.0.0.0"
    grpc_port: int = 50051
    # Uploaded files stop being served this long after upload (Replicate keeps them 24 hours).
    file_ttl_seconds: int = 24 * 3600
    # How often the bytes of expired files are looked for and deleted.
    file_purge_interval: float = 60.0
