"""Suite-wide markers and the lazily started NATS / PostgreSQL fixtures."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cogwheel.credentials import Credentials
from libs.infra import EmbeddedNats
from libs.testing.infra import INFRA_MODES, provide_database, provide_nats

# tests/security runs hostile models on a real runner (NATS JetStream, PostgreSQL): integration tests.
_MARK_BY_DIR = {"integration": "integration", "e2e": "e2e", "security": "integration"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--infra",
        choices=INFRA_MODES,
        default=os.environ.get("COGWHEEL_TEST_INFRA", "auto"),
        help="where NATS/PostgreSQL come from when no COGWHEEL_TEST_*_URL is set: "
        "auto (Docker if it answers, else embedded), local (embedded), docker",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests_dir = Path(__file__).parent
    for item in items:
        try:
            top = item.path.relative_to(tests_dir).parts[0]
        except (ValueError, IndexError):
            continue
        marker = _MARK_BY_DIR.get(top)
        if marker:
            item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture(scope="session")
def infra_mode(pytestconfig: pytest.Config) -> str:
    return str(pytestconfig.getoption("--infra"))


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory: pytest.TempPathFactory, infra_mode: str) -> Iterator[str]:
    """A JetStream-enabled NATS server shared by the whole session (started on first use)."""
    with provide_nats(tmp_path_factory.mktemp("nats"), infra_mode) as url:
        yield url


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory, infra_mode: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this session (the server is started on first use)."""
    with provide_database(tmp_path_factory.mktemp("postgres"), infra_mode) as url:
        yield url


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedNats, Credentials]]:
    """An embedded NATS with ``cogwheel up``'s per-service users and permissions, and the credentials."""
    data_dir = tmp_path_factory.mktemp("secured")
    credentials = Credentials.ensure(data_dir)
    server = EmbeddedNats(data_dir / "nats", config=credentials.nats_config())
    server.start()
    try:
        yield server, credentials
    finally:
        server.stop()
