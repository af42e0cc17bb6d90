"""Test support shared by the suites: infrastructure provisioning, fixtures' building blocks and fakes."""

from libs.testing.infra import INFRA_MODES, docker_available, provide_database, provide_nats

__all__ = ["INFRA_MODES", "docker_available", "provide_database", "provide_nats"]
