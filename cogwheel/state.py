"""``.cogwheel/state.json``: how to reach a running stack, and the seeded API token (mode 0600)."""

import json
import os
import ssl
from dataclasses import asdict, dataclass, field
from pathlib import Path

from libs.infra.process import pid_alive

__all__ = ["State", "data_dir"]


def data_dir() -> Path:
    """Where ``cogwheel`` keeps servers' data, logs and state (``COGWHEEL_DATA_DIR`` or ``./.cogwheel``)."""
    return Path(os.environ.get("COGWHEEL_DATA_DIR", ".cogwheel")).resolve()


@dataclass
class State:
    base_url: str = ""
    # Trust store (public roots + the local CA) when the gateway serves HTTPS with the local CA's certificate.
    ca_bundle: str = ""
    token: str = ""
    token_id: str = ""
    # Token of the `admin` account, used by `cogwheel account|token` (the admin HTTP API).
    admin_token: str = ""
    admin_token_id: str = ""
    version_id: str = ""
    nats_url: str = ""
    database_url: str = ""
    # gRPC addresses of the running stack's replicas, for the operator commands (`cogwheel scheduler ...`).
    registry_addr: str = ""
    scheduler_addr: str = ""
    supervisor_pid: int | None = None
    pids: dict[str, int | None] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v1"

    def verify(self) -> ssl.SSLContext | bool:
        """``verify`` for an HTTP client of this installation: the local CA when it has one."""
        if self.ca_bundle and Path(self.ca_bundle).is_file():
            return ssl.create_default_context(cafile=self.ca_bundle)
        return True

    def running(self) -> bool:
        return self.supervisor_pid is not None and pid_alive(self.supervisor_pid)

    @classmethod
    def load(cls, directory: Path) -> "State":
        try:
            raw = json.loads((directory / "state.json").read_text())
        except (OSError, ValueError):
            return cls()
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in raw.items() if k in known})

    def save(self, directory: Path) -> None:
        """Write atomically with owner-only permissions; the file holds a secret."""
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / "state.json.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(self), f, indent=2)
        os.chmod(tmp, 0o600)
        os.replace(tmp, directory / "state.json")
