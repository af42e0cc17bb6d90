"""Webhook dispatcher settings (COGWHEEL_* environment variables)."""

from libs.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "webhook_dispatcher"
    # The gateway's public origin: the `urls` in a webhook body must point where clients can reach it.
    public_url: str = "http://127.0.0.1:8000"
    webhook_senders: int = 4
    webhook_timeout: float = 10.0


class OfflineSettings(Settings):
    """For `rebuild-projections`, which touches only the database."""

    nats_url: str = ""
