"""Gateway settings."""

from libs.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    service_name: str = "gateway"
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = ""
    registry_addr: str = "127.0.0.1:50051"
    scheduler_addr: str = "127.0.0.1:50052"
    webhooks_addr: str = "127.0.0.1:50053"
    auth_cache_seconds: float = 30.0
    # Per API token, as Replicate: prediction creations and all other authenticated requests, each a token
    # bucket refilled at `*_per_minute` holding up to `*_burst` requests. 0 turns a limit off.
    rate_limit_predictions_per_minute: float = 600
    rate_limit_predictions_burst: float = 600
    rate_limit_requests_per_minute: float = 3000
    rate_limit_requests_burst: float = 3000
    # Largest upload accepted by POST /v1/files (Replicate's limit is 100 MiB).
    max_upload_bytes: int = 100 * 1024 * 1024
    # Largest model package accepted by a push (compressed upload and unpacked content alike).
    push_max_bytes: int = 20 * 1024**3

    # Browser sessions: the key that encrypts session cookies (any string; empty: a random key kept in
    # `<data dir>/gateway/web-session.key`) and how long a login lasts.
    web_session_key: str = ""
    web_session_hours: float = 24 * 7

    @property
    def origin(self) -> str:
        """Where clients reach us; absolute URLs in responses are built on it."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")
