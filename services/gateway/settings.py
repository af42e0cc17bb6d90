"""Gateway settings."""

from libs.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    service_name: str = "gateway"
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = ""
    registry_addr: str = "127.0.0.1:50051"
    scheduler_addr: str = "127.0.0.1:50052"
    auth_cache_seconds: float = 30.0
    # Largest model package accepted by a push (compressed upload and unpacked content alike).
    push_max_bytes: int = 20 * 1024**3

    @property
    def origin(self) -> str:
        """Where clients reach us; absolute URLs in responses are built on it."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")
