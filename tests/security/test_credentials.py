"""What ``cogwheel up`` generates: private files, stable across starts, and each service given only its share."""

from __future__ import annotations

import stat
from pathlib import Path

from cogwheel.credentials import Credentials
from libs.bus.permissions import SERVICE_USERS
from libs.db.migrations import service_schemas
from libs.sealing import load_private_key, load_public_key, open_sealed, seal


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_credentials_are_private_and_kept(tmp_path: Path) -> None:
    first = Credentials.ensure(tmp_path)
    assert _mode(first.directory) == 0o700
    assert sorted(p.name for p in first.directory.iterdir()) == [
        "nats.json", "postgres.json", "rpc-token", "runner-key", "runner-key.pub"]
    assert all(_mode(p) == 0o600 for p in first.directory.iterdir())
    again = Credentials.ensure(tmp_path)
    assert again == first
    (first.directory / "rpc-token").unlink()  # rotation: delete, start again
    rotated = Credentials.ensure(tmp_path)
    assert rotated.rpc_token != first.rpc_token and rotated.nats_passwords == first.nats_passwords
    key = load_private_key(rotated.secrets_private_key_file)
    assert open_sealed(seal(b"x", load_public_key(rotated.secrets_public_key)), key) == b"x"


def test_each_service_gets_only_its_share(tmp_path: Path) -> None:
    credentials = Credentials.ensure(tmp_path)
    admin_url = f"postgresql://postgres:{credentials.postgres_superuser_password}@127.0.0.1:5999/cogwheel"
    for service in SERVICE_USERS:
        env = credentials.service_env(service, database_url=admin_url)
        assert env["COGWHEEL_NATS_USER"] == service
        assert env["COGWHEEL_NATS_PASSWORD"] == credentials.nats_passwords[service]
        assert env["COGWHEEL_RPC_TOKEN"] == credentials.rpc_token
        assert credentials.postgres_superuser_password not in str(env)
        assert ("COGWHEEL_SECRETS_PRIVATE_KEY_FILE" in env) == (service == "runner")
        assert ("COGWHEEL_SECRETS_PUBLIC_KEY" in env) == (service == "scheduler")
        if service in service_schemas():
            assert env["COGWHEEL_DATABASE_URL"].startswith(f"postgresql://cogwheel_{service}:")
        else:
            assert env["COGWHEEL_DATABASE_URL"] == ""  # the runner has no database
    assert "COGWHEEL_NATS_USER" not in credentials.service_env("gateway", nats=False)
