"""Starting again right after stopping: the gateway's port is taken again at once, although the connections it
closed a moment ago still sit in TIME_WAIT on it (issue 12, gap 7: "port 127.0.0.1:8000 is already in use")."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

from cogwheel.stack import Stack
from libs.infra import free_port


def _plain_bind_refused(port: int) -> bool:
    """True while something (a listener, or a connection in TIME_WAIT) holds ``port`` for a bind without
    SO_REUSEADDR."""
    with socket.socket() as plain:
        try:
            plain.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


async def test_a_stack_starts_again_on_its_port_right_after_a_stop(
    tmp_path: Path, nats_url: str, database_url: str
) -> None:
    port = free_port()

    def gateway_only() -> Stack:
        return Stack(nats_url, database_url, tmp_path, gateway_port=port, services=["gateway"],
                     notify=lambda _: None)

    first = gateway_only()
    await first.start(timeout=120)
    try:
        # The gateway closes each of these connections itself (`Connection: close`): its side of every one
        # lingers in TIME_WAIT on the port once it has stopped, as after real traffic.
        async with httpx.AsyncClient(timeout=10, headers={"Connection": "close"}) as http:
            for _ in range(20):
                assert (await http.get(f"{first.base_url}/healthz")).status_code == 200
    finally:
        await first.stop()

    assert _plain_bind_refused(port), "no connection was left in TIME_WAIT on the port; nothing was tested"
    second = gateway_only()
    await second.start(timeout=120)  # raised "port ... is already in use" before the fix
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            ready = await http.get(f"{second.base_url}/readyz")
            assert ready.status_code == 200, ready.text
        assert second.processes["gateway-1"].exits == 0
    finally:
        await second.stop()
