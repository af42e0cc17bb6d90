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
    # What an uploaded package may unpack to besides its size: entries, inflation ratio (beyond 64 MiB), depth.
    push_max_files: int = 20_000
    push_max_ratio: float = 200.0
    push_max_depth: int = 32
    # Hostile input (docs/architecture.md, "Limits and the address guard").
    max_json_body_bytes: int = 1024 * 1024
    # A prediction's input travels in NATS messages (1 MiB payloads), so it is bounded well below that.
    max_input_bytes: int = 512 * 1024
    # A request body that stops arriving for this long is answered 408; idle keep-alive connections close sooner.
    body_read_timeout: float = 30.0
    # A request line and headers not complete after this long close the connection (slow loris).
    header_read_timeout: float = 10.0
    keep_alive_timeout: float = 5.0
    # Failed authentications per client address within the window before it is answered 429 (0: off).
    auth_failure_limit: int = 20
    auth_failure_window_seconds: float = 60.0

    # Browser sessions: the key that encrypts session cookies (any string; empty: a random key kept in
    # `<data dir>/gateway/web-session.key`) and how long a login lasts.
    web_session_key: str = ""
    web_session_hours: float = 24 * 7

    @property
    def origin(self) -> str:
        """Where clients reach us; absolute URLs in responses are built on it."""
        scheme = "https" if self.tls else "http"
        return (self.public_url or f"{scheme}://{self.host}:{self.port}").rstrip("/")

    @property
    def tls(self) -> bool:
        return bool(self.ssl_certfile and self.ssl_keyfile)
