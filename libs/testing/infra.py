"""Where the test suite's NATS and PostgreSQL come from: given URLs, Docker containers, or embedded servers.

Order of preference for each server:
1. ``COGWHEEL_TEST_NATS_URL`` / ``COGWHEEL_TEST_DATABASE_URL`` (a fresh database is still created on that server);
2. testcontainers, when a Docker engine answers quickly (mode ``auto`` or ``docker``);
3. the embedded launchers from ``libs.infra`` on loopback ports of their own (mode ``auto`` or ``local``).

Nothing here ever falls back to a server that merely happens to listen on the default ports.
"""

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from libs.infra import EmbeddedNats, EmbeddedPostgres, InfraError, create_database, drop_database

__all__ = ["INFRA_MODES", "docker_available", "provide_database", "provide_nats"]

INFRA_MODES = ("auto", "local", "docker")

NATS_IMAGE = "nats:2.11-alpine"
POSTGRES_IMAGE = "postgres:17-alpine"


def docker_available(timeout: float = 2.0) -> bool:
    """True when a Docker engine answers a ping within ``timeout`` seconds."""
    try:
        import docker

        client = docker.from_env(timeout=int(max(timeout, 1)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _use_docker(mode: str) -> bool:
    if mode not in INFRA_MODES:
        raise InfraError(f"unknown infra mode {mode!r}; expected one of {', '.join(INFRA_MODES)}")
    if mode == "local":
        return False
    if docker_available():
        return True
    if mode == "docker":
        raise InfraError("infra mode 'docker' requested but no Docker engine answers")
    return False


@contextlib.contextmanager
def provide_nats(work_dir: Path, mode: str = "auto") -> Iterator[str]:
    """Yield the URL of a JetStream-enabled NATS server for the duration of the block."""
    given = os.environ.get("COGWHEEL_TEST_NATS_URL")
    if given:
        yield given
    elif _use_docker(mode):
        from testcontainers.community.nats import NatsContainer

        with NatsContainer(NATS_IMAGE, jetstream=True) as container:
            yield container.nats_uri()
    else:
        server = EmbeddedNats(work_dir / "nats")
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


@contextlib.contextmanager
def _postgres_server(work_dir: Path, mode: str) -> Iterator[str]:
    given = os.environ.get("COGWHEEL_TEST_DATABASE_URL")
    if given:
        yield given
    elif _use_docker(mode):
        from testcontainers.community.postgres import PostgresContainer

        with PostgresContainer(POSTGRES_IMAGE, driver=None) as container:
            yield container.get_connection_url()
    else:
        server = EmbeddedPostgres(work_dir / "pgdata", durable=False)
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


@contextlib.contextmanager
def provide_database(work_dir: Path, mode: str = "auto") -> Iterator[str]:
    """Yield the URL of a freshly created, uniquely named database; it is dropped afterwards."""
    with _postgres_server(work_dir, mode) as server_url:
        url = create_database(server_url)
        try:
            yield url
        finally:
            with contextlib.suppress(Exception):
                drop_database(url)
