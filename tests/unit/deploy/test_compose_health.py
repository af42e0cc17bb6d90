"""docker-compose.yml checks readiness where each service answers it, and publishes a gateway that listens."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from cogwheel.stack import SERVICES

COMPOSE = Path(__file__).resolve().parents[3] / "docker-compose.yml"


def _services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def _probed(service: dict[str, Any]) -> tuple[str, int, str]:
    """(host, port, path) the service's health check requests."""
    command = " ".join(service["healthcheck"]["test"])
    url = command.split("urlopen('", 1)[1].split("'", 1)[0]
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or 0, parts.path


def test_every_service_is_health_checked_on_readyz_where_it_serves_it() -> None:
    services = _services()
    assert set(SERVICES) <= set(services)
    for name in SERVICES:
        env = services[name]["environment"]
        host, port, path = _probed(services[name])
        assert path == "/readyz", name
        assert host == "127.0.0.1", name  # run inside the service's own container
        served_on = env["COGWHEEL_PORT"] if name == "gateway" else env["COGWHEEL_HEALTH_PORT"]
        assert port == int(served_on), name


def test_the_published_gateway_listens_beyond_loopback() -> None:
    gateway = _services()["gateway"]
    assert gateway["environment"]["COGWHEEL_HOST"] == "0.0.0.0"
    published = {int(mapping.split(":")[-1]) for mapping in gateway["ports"]}
    assert published == {int(gateway["environment"]["COGWHEEL_PORT"])}
