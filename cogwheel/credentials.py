"""Internal credentials of one installation, generated once into ``<data_dir>/credentials`` (0700, files 0600).

- ``nats.json``: a password per NATS user (``admin`` and one per service), checked by the embedded server;
- ``postgres.json``: the embedded PostgreSQL's superuser password and one per service schema's role;
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
from libs.db.migrations import service_schemas
from libs.db.roles import role_for, url_for_role
from libs.sealing import generate_key_pair, private_key_text, public_key_text

__all__ = ["Credentials", "write_key_pair", "write_private"]

DIRECTORY = "credentials"
POSTGRES_SUPERUSER = "postgres"


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


def write_key_pair(directory: Path) -> tuple[Path, str]:
    """A new sealing key pair as ``runner-key`` and ``runner-key.pub`` in ``directory`` (0700, files 0600);
    returns the private key's path and the public key's text."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    private, public = generate_key_pair()
    write_private(directory / "runner-key", private_key_text(private) + "\n")
    write_private(directory / "runner-key.pub", public_key_text(public) + "\n")
    return directory / "runner-key", public_key_text(public)


def _passwords(path: Path, names: Iterable[str]) -> dict[str, str]:
    """A JSON file of passwords by name, completed with new random ones for missing names."""
    passwords: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    missing = [name for name in names if name not in passwords]
    for name in missing:
        passwords[name] = secrets.token_urlsafe(24)
    if missing or not path.exists():
        write_private(path, json.dumps(passwords, indent=2))
    path.chmod(0o600)
    return passwords


@dataclass(frozen=True)
class Credentials:
    directory: Path
    nats_passwords: dict[str, str]
    rpc_token: str
    secrets_public_key: str
    # "postgres" (the superuser) and one entry per service schema.
    postgres_passwords: dict[str, str]

    @property
    def secrets_private_key_file(self) -> Path:
        return self.directory / "runner-key"

    @classmethod
    def ensure(cls, data_dir: Path) -> Credentials:
        """Load the installation's credentials, creating whatever is missing."""
        directory = Path(data_dir).resolve() / DIRECTORY
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        passwords = _passwords(directory / "nats.json", (ADMIN_USER, *SERVICE_USERS))
        postgres = _passwords(directory / "postgres.json", (POSTGRES_SUPERUSER, *service_schemas()))
        token = _read_or_create(directory / "rpc-token", lambda: secrets.token_urlsafe(32))
        private_path, public_path = directory / "runner-key", directory / "runner-key.pub"
        if not private_path.exists() or not public_path.exists():
            write_key_pair(directory)
        private_path.chmod(0o600)
        return cls(directory, passwords, token, public_path.read_text().strip(), postgres)

    def nats_config(self, runner_hardware: Iterable[str] = ("cpu",)) -> str:
        """The embedded server's authorization block: who may do what."""
        return authorization_config(self.nats_passwords, runner_hardware)

    def admin_nats(self) -> tuple[str, str]:
        return ADMIN_USER, self.nats_passwords[ADMIN_USER]

    @property
    def postgres_superuser_password(self) -> str:
        return self.postgres_passwords[POSTGRES_SUPERUSER]

    def schema_passwords(self) -> dict[str, str]:
        return {k: v for k, v in self.postgres_passwords.items() if k != POSTGRES_SUPERUSER}

    def service_env(self, service: str, *, nats: bool = True, database_url: str | None = None) -> dict[str, str]:
        """What one service process gets: its NATS user (when the server checks them), the gRPC token, its
        side of the sealing key pair and, given the administrator's ``database_url``, its own database role."""
        env = {"COGWHEEL_RPC_TOKEN": self.rpc_token}
        if nats:
            env |= {"COGWHEEL_NATS_USER": service, "COGWHEEL_NATS_PASSWORD": self.nats_passwords[service]}
        if database_url is not None:
            password = self.postgres_passwords.get(service)
            # A service without a schema (the runner) gets no database at all.
            env["COGWHEEL_DATABASE_URL"] = url_for_role(database_url, role_for(service), password) if password else ""
        if service == "scheduler":
            env["COGWHEEL_SECRETS_PUBLIC_KEY"] = self.secrets_public_key
        if service == "runner":
            env["COGWHEEL_SECRETS_PRIVATE_KEY_FILE"] = str(self.secrets_private_key_file)
        return env
