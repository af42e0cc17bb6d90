"""`cogwheel up`'s embedded NATS and PostgreSQL are supervised: killed, they come back on their port and data."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import nats
import psycopg
import pytest

from cogwheel.servers import Servers
from libs.testing.polling import wait_until


@pytest.fixture
async def servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Servers]:
    monkeypatch.delenv("COGWHEEL_NATS_URL", raising=False)
    monkeypatch.delenv("COGWHEEL_DATABASE_URL", raising=False)
    started = Servers(tmp_path)
    await started.start()
    yield started
    await started.stop()


async def test_killed_nats_and_postgres_come_back_on_their_port_with_their_data(servers: Servers) -> None:
    lines: list[str] = []
    servers.supervise(lines.append)
    with psycopg.connect(servers.database_url) as conn:
        conn.execute("CREATE TABLE kept (v text)")
        conn.execute("INSERT INTO kept VALUES ('still here')")
    nc = await nats.connect(servers.nats_url)
    js = nc.jetstream()
    await js.add_stream(name="SUPERVISED", subjects=["supervised.>"])
    await js.publish("supervised.one", b"kept")
    await nc.close()

    old = servers.pids()
    os.kill(old["nats"], signal.SIGKILL)
    os.kill(old["postgres"], signal.SIGKILL)

    async def both_back() -> bool:
        return sum("is back" in line for line in lines) == 2

    await wait_until(both_back, timeout=90)
    assert any(line.startswith("nats exited with code -9") for line in lines), lines
    assert any(line.startswith("postgres exited with code -9") for line in lines), lines
    new = servers.pids()
    assert new["nats"] not in (None, old["nats"]) and new["postgres"] not in (None, old["postgres"])
    # The dead children were reaped: no zombie keeps holding a pid that a lock file names.
    assert not Path(f"/proc/{old['nats']}").exists()
    assert not Path(f"/proc/{old['postgres']}").exists()

    with psycopg.connect(servers.database_url) as conn:
        assert conn.execute("SELECT v FROM kept").fetchone() == ("still here",)
    nc = await nats.connect(servers.nats_url)
    assert (await nc.jetstream().get_msg("SUPERVISED", 1)).data == b"kept"
    await nc.close()


async def test_a_stopped_stack_does_not_restart_its_servers(servers: Servers) -> None:
    lines: list[str] = []
    servers.supervise(lines.append)
    await servers.stop()
    await asyncio.sleep(1.5)
    assert lines == []


async def test_readiness_turns_false_while_a_dependency_is_down_and_back_after(servers: Servers) -> None:
    from libs.bus.nats import connect
    from libs.db import create_engine
    from libs.health import nats_check, postgres_check, serve_health
    from libs.infra import free_port

    lines: list[str] = []
    # A longer first backoff keeps each outage open long enough to observe, however loaded the machine is.
    servers.restart_backoff = 3.0
    servers.supervise(lines.append)
    bus = await connect(servers.nats_url, name="readiness-test")
    engine = create_engine(servers.database_url)
    port = free_port()
    health = await serve_health("probe", port, lambda: True,
                                checks={"nats": nats_check(bus), "postgres": postgres_check(engine)})
    assert health is not None
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 200 and ready.json()["checks"] == {
                "process": "ok", "nats": "ok", "postgres": "ok"}

            for name in ("nats", "postgres"):
                os.kill(servers.pids()[name], signal.SIGKILL)

                async def not_ready(dependency: str = name) -> bool:
                    # The kill reaches the client only when its socket says so: a moment, not at once.
                    down = await http.get("/readyz")
                    return down.status_code == 503 and down.json()["checks"][dependency] != "ok"

                await wait_until(not_ready, timeout=30, interval=0.1)
                # Liveness stays: the process is fine and must not be restarted for its dependency's sake.
                assert (await http.get("/healthz")).status_code == 200

                async def ready_again() -> bool:
                    return (await http.get("/readyz")).status_code == 200

                await wait_until(ready_again, timeout=90, interval=0.3)
    finally:
        health.close()
        await bus.close()
        await engine.dispose()
