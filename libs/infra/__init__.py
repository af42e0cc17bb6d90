"""Embedded NATS JetStream and PostgreSQL servers on loopback, for ``cogwheel up`` and the test suite."""

from libs.infra.databases import create_database, drop_database, ensure_database, with_database
from libs.infra.errors import InfraError
from libs.infra.nats import EmbeddedNats, find_nats_server
from libs.infra.net import free_port, port_in_use, wait_for_port
from libs.infra.postgres import EmbeddedPostgres, find_pg_bin

__all__ = [
    "EmbeddedNats",
    "EmbeddedPostgres",
    "InfraError",
    "create_database",
    "drop_database",
    "ensure_database",
    "find_nats_server",
    "find_pg_bin",
    "free_port",
    "port_in_use",
    "wait_for_port",
    "with_database",
]
