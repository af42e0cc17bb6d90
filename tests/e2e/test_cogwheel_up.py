"""`cogwheel up` itself, as a user runs it: its embedded NATS and PostgreSQL killed come back (said on the
console), and after Ctrl-C it starts again at once on the same port although the connections the gateway
closed still sit in TIME_WAIT there (issue 12, gaps 2 and 7)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from cogwheel.state import State
from libs.infra import free_port
from libs.testing.polling import wait_until

ROOT = Path(__file__).resolve().parents[2]


class Up:
    """One `cogwheel up --http` process and the console lines it printed."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.lines.append(line.decode(errors="replace").rstrip())

    def said(self, fragment: str) -> int:
        return sum(fragment in line for line in self.lines if line.startswith("cogwheel |"))

    async def wait_said(self, fragment: str, times: int = 1, timeout: float = 180) -> None:
        async def enough() -> bool:
            if self.process.returncode is not None:
                raise AssertionError(f"cogwheel up exited with code {self.process.returncode}")
            return self.said(fragment) >= times

        try:
            await wait_until(enough, timeout=timeout, interval=0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; waiting for {fragment!r}:\n" + "\n".join(self.lines[-30:])) from None

    async def stop(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)
        try:
            code = await asyncio.wait_for(self.process.wait(), 90)
        finally:
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()
            await self._reader
        return code


@contextlib.asynccontextmanager
async def cogwheel_up(data_dir: Path, port: int) -> AsyncIterator[Up]:
    env = {**os.environ, "COGWHEEL_DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}
    for given in ("COGWHEEL_NATS_URL", "COGWHEEL_DATABASE_URL", "COGWHEEL_PORT", "COGWHEEL_PUBLIC_URL"):
        env.pop(given, None)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cogwheel.cli", "up", "--http", "--port", str(port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env, cwd=ROOT,
    )
    up = Up(process)
    try:
        yield up
    finally:
        await up.stop()


def _plain_bind_refused(port: int) -> bool:
    with socket.socket() as plain:
        try:
            plain.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


async def test_cogwheel_up_brings_its_servers_back_and_starts_again_right_after_a_stop(tmp_path: Path) -> None:
    data_dir, port = tmp_path / "data", free_port()
    async with cogwheel_up(data_dir, port) as up:
        await up.wait_said("ready: API")
        servers = State.load(data_dir).pids
        for name in ("nats", "postgres"):
            pid = servers[name]
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            await up.wait_said(f"{name} exited with code -9; restarting")
            await up.wait_said(f"{name} is back (pid ")
        async with httpx.AsyncClient(timeout=30, headers={"Connection": "close"}) as http:

            async def ready() -> bool:
                return (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200

            await wait_until(ready, timeout=60, interval=0.3)
            token = State.load(data_dir).token
            created = await http.post(
                f"http://127.0.0.1:{port}/v1/models/cogwheel/hello-world/predictions",
                json={"input": {"text": "after the servers came back"}},
                headers={"Authorization": f"Bearer {token}", "Prefer": "wait=30"},
            )
            assert created.status_code == 201 and created.json()["status"] == "succeeded", created.text
            for _ in range(20):  # closed by the gateway: its side lingers in TIME_WAIT once it has stopped
                assert (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
        assert await up.stop() == 0

    assert _plain_bind_refused(port), "no connection was left in TIME_WAIT on the port; nothing was tested"
    async with cogwheel_up(data_dir, port) as again:
        await again.wait_said("ready: API", timeout=120)
        assert again.said("already in use") == 0
        assert await again.stop() == 0
