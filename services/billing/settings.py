"""Billing settings (COGWHEEL_* environment variables)."""

from libs.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "billing"


class OfflineSettings(Settings):
    """For `rebuild-projections`, which touches only the database."""

    nats_url: str = ""
