"""Webhook dispatcher settings (COGWHEEL_* environment variables)."""

from pydantic import Field

from libs.settings import ServiceSettings

WEEK_SECONDS = 7 * 24 * 3600


class Settings(ServiceSettings):
    service_name: str = "webhook_dispatcher"
    # The gateway's public origin: the `urls` in a webhook body must point where clients can reach it.
    public_url: str = "http://127.0.0.1:8000"
    # gRPC `cogwheel.webhooks.v1.WebhooksService` (signing secrets, attempt history, summary).
    grpc_port: int = 50053
    webhook_senders: int = Field(default=4, ge=1)
    webhook_timeout: float = Field(default=10.0, gt=0)
    # `output`/`logs` deliveries of one prediction go out at most once per this many seconds.
    webhook_throttle_seconds: float = Field(default=0.5, ge=0)
    # How long a failing `completed` delivery is retried, counted from its first attempt.
    webhook_retry_window_seconds: float = Field(default=60.0, ge=0, le=WEEK_SECONDS)
    webhook_retry_base_seconds: float = Field(default=1.0, gt=0)
    webhook_retry_max_interval_seconds: float = Field(default=600.0, gt=0)
    # Networks webhooks may reach although they are private, loopback or link-local, e.g. "127.0.0.0/8,::1/128".
    # Empty: only public addresses. `cogwheel up` allows loopback for local development.
    webhook_allowed_networks: str = ""
    # A sender holds a delivery this long; past it another sender may take the delivery over (same webhook-id).
    webhook_lease_seconds: float = Field(default=0.0, ge=0)
    webhook_poll_seconds: float = Field(default=0.25, gt=0)

    @property
    def lease_seconds(self) -> float:
        return self.webhook_lease_seconds or self.webhook_timeout + 10.0


class OfflineSettings(Settings):
    """For `rebuild-projections`, which touches only the database."""

    nats_url: str = ""
