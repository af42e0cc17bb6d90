"""Internal credentials of one installation, generated once into ``<data_dir>/credentials`` (0700, files 0600).

- ``nats.json``: a password per NATS user (``admin`` and one per service), checked by the embedded server;
- ``rpc-token``: the shared token every internal gRPC call carries;
- ``runner-key`` / ``runner-key.pub``: the X25519 key pair that seals secret inputs (scheduler: public
  key; runners: private key).

They are kept across restarts (a new runner key would strand queued jobs). Rotation: stop, delete the file
(or the whole folder), start again.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from libs.bus.permissions import ADMIN_USER, SERVICE_USERS, authorization_config
from libs.sealing import generate_key_pair, private_key_text, public_key_text

__all__ = ["Credentials", "write_private"]

DIRECTORY = "credentials"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by the owner only (created so, never world-readable even briefly)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _read_or_create(path: Path, make: Callable[[], str]) -> str:
    if path.exists():
        path.chmod(0o600)
        return path.read_text().strip()
    value = make()
    write_private(path, value + "\n")
    return value


@dataclass(frozen=True)
class Credentials:
    directory: Path
    nats_passwords: dict[str, str]
    rpc_token: str
    secrets_public_key: str

    @property
    def secrets_private_key_file(self) -> Path:
        return self.directory / "runner-key"

    @classmethod
    def ensure(cls, data_dir: Path) -> "Credentials":
        """Load the installation's credentials, creating whatever is missing."""
        directory = Path(data_dir).resolve() / DIRECTORY
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        users_path = directory / "nats.json"
        passwords: dict[str, str] = json.loads(users_path.read_text()) if users_path.exists() else {}
        missing = [user for user in (ADMIN_USER, *SERVICE_USERS) if user not in passwords]
        for user in missing:
            passwords[user] = secrets.token_urlsafe(24)
        if missing or not users_path.exists():
            write_private(users_path, json.dumps(passwords, indent=2))
        users_path.chmod(0o600)
        token = _read_or_create(directory / "rpc-token", lambda: secrets.token_urlsafe(32))
        private_path, public_path = directory / "runner-key", directory / "runner-key.pub"
        if not private_path.exists() or not public_path.exists():
            private, public = generate_key_pair()
            write_private(private_path, private_key_text(private) + "\n")
            write_private(public_path, public_key_text(public) + "\n")
        private_path.chmod(0o600)
        return cls(directory, passwords, token, public_path.read_text().strip())

    def nats_config(self, runner_hardware: Iterable[str] = ("cpu",)) -> str:
        """The embedded server's authorization block: who may do what."""
        return authorization_config(self.nats_passwords, runner_hardware)

    def admin_nats(self) -> tuple[str, str]:
        return ADMIN_USER, self.nats_passwords[ADMIN_USER]

    def service_env(self, service: str, *, nats: bool = True) -> dict[str, str]:
        """What one service process gets: its NATS user (when the server checks them), the gRPC token,
        and its side of the sealing key pair."""
        env = {"COGWHEEL_RPC_TOKEN": self.rpc_token}
        if nats:
            env |= {"COGWHEEL_NATS_USER": service, "COGWHEEL_NATS_PASSWORD": self.nats_passwords[service]}
        if service == "scheduler":
            env["COGWHEEL_SECRETS_PUBLIC_KEY"] = self.secrets_public_key
        if service == "runner":
            env["COGWHEEL_SECRETS_PRIVATE_KEY_FILE"] = str(self.secrets_private_key_file)
        return env
