"""The embedded PostgreSQL with a superuser password: nobody logs in without it, and a cluster created
before passwords were required is converted on its next start."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from libs.infra import EmbeddedPostgres, InfraError

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def cluster_dir() -> Iterator[Path]:
    # Outside pytest's base temp dir, which a new pytest session makes owner-only (see test_secured_stack).
    work = Path(tempfile.mkdtemp(prefix="cogwheel-pg-passwords-"))
    yield work / "pgdata"
    shutil.rmtree(work, ignore_errors=True)


def _refused(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.OperationalError as exc:
        return "password" in str(exc)
    return False


def test_a_trusting_cluster_starts_requiring_passwords(cluster_dir: Path) -> None:
    with EmbeddedPostgres(cluster_dir, durable=False) as open_server:
        passwordless = open_server.url
        psycopg.connect(passwordless, connect_timeout=5).close()  # before: anyone on the machine gets in
    with EmbeddedPostgres(cluster_dir, durable=False, password="s3cure-enough") as server:
        assert _refused(f"postgresql://postgres@127.0.0.1:{server.port}/cogwheel")
        assert _refused(f"postgresql://postgres:guess@127.0.0.1:{server.port}/cogwheel")
        with psycopg.connect(server.url, connect_timeout=5) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
    # The cluster keeps its password: another one is refused with a clear error, not a long wait.
    with pytest.raises(InfraError, match="refuses the superuser password"):
        EmbeddedPostgres(cluster_dir, durable=False, password="not-the-one").start(timeout=30)
    # A fresh cluster requires the password from the start; the data directory stays private.
    shutil.rmtree(cluster_dir)
    with EmbeddedPostgres(cluster_dir, durable=False, password="another-one") as server:
        assert _refused(f"postgresql://postgres@127.0.0.1:{server.port}/cogwheel")
        psycopg.connect(server.url, connect_timeout=5).close()
        assert cluster_dir.stat().st_mode & 0o777 == 0o700
