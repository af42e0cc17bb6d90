"""Gateway settings."""

from libs.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    service_name: str = "gateway"
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = ""
    # PEM certificate chain and key: when both are set the gateway serves HTTPS itself (`cogwheel up` does).
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
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
    # Key of signed file download links; empty: a random one kept in the gateway's schema, shared by replicas.
    files_signing_secret: str = ""
    # Largest upload accepted by POST /v1/files (Replicate's limit is 100 MiB).
    max_upload_bytes: int = 100 * 1024 * 1024
    # Largest model package accepted by a push (compressed upload and unpacked content alike).
    push_max_bytes: int = 20 * 1024**3

    @property
    def origin(self) -> str:
        """Where clients reach us; absolute URLs in responses are built on it."""
        scheme = "https" if self.tls else "http"
        return (self.public_url or f"{scheme}://{self.host}:{self.port}").rstrip("/")

    @property
    def tls(self) -> bool:
        return bool(self.ssl_certfile and self.ssl_keyfile)
