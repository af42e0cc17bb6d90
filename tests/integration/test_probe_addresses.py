"""Probes from outside a service's process reach `/healthz` and `/readyz` where the deployment says so.

A Kubernetes httpGet probe connects to the pod's IP, not to loopback: with `COGWHEEL_HEALTH_HOST=0.0.0.0` (and
`COGWHEEL_HOST=0.0.0.0` on the gateway, which answers them on its HTTP port) every service answers on any
address; by default only on 127.0.0.1. 127.0.0.2 stands in for the pod IP: it is a local address, but a
socket bound to 127.0.0.1 does not accept connections made to it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from cogwheel.stack import SERVICES, Stack
from libs.infra import free_port

OTHER_ADDRESS = "127.0.0.2"


def _ports(stack: Stack) -> dict[str, int]:
    """Process name -> the port its `/healthz` and `/readyz` are served on."""
    return {name: int(urlsplit(proc.health_url).port or 0) for name, proc in stack.processes.items()}


@pytest.fixture(scope="module")
async def exposed(tmp_path_factory: pytest.TempPathFactory, nats_url: str, database_url: str) -> AsyncIterator[Stack]:
    stack = Stack(nats_url, database_url, tmp_path_factory.mktemp("probes"), gateway_port=free_port(),
                  extra_env={"COGWHEEL_HEALTH_HOST": "0.0.0.0", "COGWHEEL_HOST": "0.0.0.0"}, notify=lambda _: None)
    await stack.start(timeout=180)
    yield stack
    await stack.stop()


async def test_every_service_answers_its_probes_on_another_address(exposed: Stack) -> None:
    ports = _ports(exposed)
    assert {exposed.processes[name].service for name in ports} == set(SERVICES)
    async with httpx.AsyncClient(timeout=10) as http:
        for name, port in ports.items():
            live = await http.get(f"http://{OTHER_ADDRESS}:{port}/healthz")
            assert live.status_code == 200, (name, live.text)
            ready = await http.get(f"http://{OTHER_ADDRESS}:{port}/readyz")
            assert ready.status_code == 200, (name, ready.text)
            # Readiness checks the dependencies themselves (the runner needs only NATS).
            service = exposed.processes[name].service
            wanted = {"nats"} | ({"postgres"} if service != "runner" else set())
            if service == "gateway":
                wanted.add("nats_subscribers")  # FastStream's connection, for token and membership changes
            checks = {k: v for k, v in ready.json()["checks"].items() if k != "process"}
            assert checks == dict.fromkeys(wanted, "ok"), (name, ready.text)


async def test_by_default_probes_are_answered_on_loopback_only(
    tmp_path: Path, nats_url: str, database_url: str
) -> None:
    stack = Stack(nats_url, database_url, tmp_path, services=["billing"], notify=lambda _: None)
    await stack.start(timeout=120)
    try:
        (port,) = _ports(stack).values()
        async with httpx.AsyncClient(timeout=5) as http:
            assert (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
            with pytest.raises(httpx.ConnectError):
                await http.get(f"http://{OTHER_ADDRESS}:{port}/readyz")
    finally:
        await stack.stop()
