"""Settings shared by every service process, read from COGWHEEL_* environment variables."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ServiceSettings"]


class ServiceSettings(BaseSettings):
    """Base settings; each service subclasses it and adds its own fields."""

    model_config = SettingsConfigDict(env_prefix="COGWHEEL_", extra="ignore")

    service_name: str = "cogwheel"
    # No defaults: a service must never silently attach to whatever server happens to listen locally.
    nats_url: str
    database_url: str
    # NATS user of this service (``cogwheel up`` gives each service its own); empty: the URL's credentials.
    nats_user: str = ""
    nats_password: str = ""
    instance_id: str = ""
    health_port: int = 0
    # Address `/healthz` and `/readyz` listen on: loopback by default; 0.0.0.0 where a prober comes from outside
    # the process's network namespace (Kubernetes httpGet probes reach the pod IP).
    health_host: str = "127.0.0.1"
    data_dir: str = ".cogwheel"
    log_level: str = "INFO"
    # How long a consumer remembers a message it applied (its tracking row); see libs/eventstore/tracking.py.
    tracking_retention_seconds: float = Field(default=7 * 24 * 3600.0, gt=0)
    otlp_endpoint: str | None = Field(default=None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT")
