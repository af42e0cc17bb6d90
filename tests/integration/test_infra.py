"""The embedded launchers: real servers on loopback, JetStream on, data kept across restarts."""

import os
import signal
import socket
import subprocess
from pathlib import Path

import nats
import psycopg
import pytest

from libs.infra import EmbeddedNats, EmbeddedPostgres, InfraError, create_database, drop_database


@pytest.fixture
def pg(tmp_path: Path):
    server = EmbeddedPostgres(tmp_path / "pgdata", durable=False)
    server.start()
    yield server
    server.stop()


async def test_nats_has_jetstream_and_keeps_streams_across_restart(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path / "nats")
    url = await server.astart()
    assert url.startswith("nats://127.0.0.1:")
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(name="INFRA_TEST", subjects=["infra.test.>"])
    ack = await js.publish("infra.test.one", b"hello")
    assert ack.seq == 1
    await nc.close()
    await server.astop()

    url = await server.astart()
    nc = await nats.connect(url)
    msg = await nc.jetstream().get_msg("INFRA_TEST", 1)
    assert msg.data == b"hello"
    await nc.close()
    await server.astop()


def test_nats_reports_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(InfraError, match="already in use"):
            EmbeddedNats(tmp_path / "nats", port=port).start()


def test_postgres_serves_the_app_database_and_keeps_data_across_restart(pg: EmbeddedPostgres) -> None:
    assert pg.url.endswith("/cogwheel")
    with psycopg.connect(pg.url) as conn:
        conn.execute("CREATE TABLE kept (v text)")
        conn.execute("INSERT INTO kept VALUES ('still here')")
    pg.stop()
    assert not pg.running()

    pg.start()
    with psycopg.connect(pg.url) as conn:
        assert conn.execute("SELECT v FROM kept").fetchone() == ("still here",)


def test_postgres_recovers_from_a_stale_pid_file(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path / "pgdata")
    pg.start()
    try:
        with psycopg.connect(pg.url) as conn:
            conn.execute("CREATE TABLE survived (v int)")
        assert pg.pid is not None
        os.kill(pg.pid, signal.SIGKILL)
        pg._proc.wait()  # type: ignore[union-attr]
        assert (pg.data_dir / "postmaster.pid").exists()

        pg.stop()
        pg.start()
        with psycopg.connect(pg.url) as conn:
            assert conn.execute("SELECT count(*) FROM survived").fetchone() == (0,)
    finally:
        pg.stop()


def test_postgres_starts_over_a_pid_file_naming_a_live_process_that_is_not_postgres(tmp_path: Path) -> None:
    pg = EmbeddedPostgres(tmp_path / "pgdata", durable=False)
    pg.start()
    # Owned by the server's user, as a recycled pid would be: PostgreSQL cannot tell it from a live postmaster.
    other = subprocess.Popen(["sleep", "120"], **(pg.run_as.popen_kwargs() if pg.run_as else {}))
    try:
        assert pg.pid is not None
        os.kill(pg.pid, signal.SIGKILL)
        pg._proc.wait()  # type: ignore[union-attr]
        # The dead server's pid is now someone else's: PostgreSQL alone would take that for a live postmaster.
        pidfile = pg.data_dir / "postmaster.pid"
        lines = pidfile.read_text().splitlines()
        pidfile.write_text("\n".join([str(other.pid), *lines[1:]]) + "\n")

        pg.stop()
        pg.start()
        with psycopg.connect(pg.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert other.poll() is None  # the unrelated process was left alone
    finally:
        other.kill()
        other.wait()
        pg.stop()


def test_postgres_stops_a_server_left_behind_by_a_killed_supervisor(tmp_path: Path) -> None:
    first = EmbeddedPostgres(tmp_path / "pgdata", durable=False)
    first.start()
    orphan = first._proc
    assert orphan is not None
    first._proc = None  # forget it, as a SIGKILLed supervisor would
    second = EmbeddedPostgres(tmp_path / "pgdata", durable=False)
    try:
        second.start()
        assert orphan.wait(timeout=30) is not None
        with psycopg.connect(second.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert second.pid != orphan.pid
    finally:
        second.stop()
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()


def test_nats_stops_a_server_left_behind_by_a_killed_supervisor(tmp_path: Path) -> None:
    first = EmbeddedNats(tmp_path / "nats")
    first.start()
    orphan = first._proc
    assert orphan is not None
    first._proc = None  # forget it, as a SIGKILLed supervisor would
    second = EmbeddedNats(tmp_path / "nats")
    try:
        second.start()
        assert orphan.wait(timeout=10) is not None
    finally:
        second.stop()
        if orphan.poll() is None:
            orphan.kill()


def test_create_database_gives_an_isolated_database(pg: EmbeddedPostgres) -> None:
    first, second = create_database(pg.url), create_database(pg.url)
    assert first != second
    with psycopg.connect(first) as conn:
        conn.execute("CREATE TABLE only_here (v int)")
    with psycopg.connect(second) as conn:
        assert conn.execute("SELECT to_regclass('only_here')").fetchone() == (None,)
    drop_database(first)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(first, connect_timeout=2).close()


def test_session_fixtures_answer(nats_url: str, database_url: str) -> None:
    assert database_url.startswith("postgresql://")
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0].startswith("cogwheel_test_")
    assert nats_url.startswith("nats://")


def test_a_port_left_in_time_wait_by_a_stopped_server_reads_as_free() -> None:
    from libs.infra import free_port, port_in_use

    port = free_port()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen()
    client = socket.create_connection(("127.0.0.1", port))
    served, _ = listener.accept()
    served.close()  # the server closes first, as a stopping gateway does: its side lingers in TIME_WAIT
    client.recv(1)
    client.close()
    listener.close()

    with socket.socket() as plain:
        try:
            plain.bind(("127.0.0.1", port))
            time_wait_blocks_plain_bind = False
        except OSError:
            time_wait_blocks_plain_bind = True
    assert time_wait_blocks_plain_bind, "the kernel did not keep the port in TIME_WAIT; nothing was tested"
    assert not port_in_use(port)
    # A server (SO_REUSEADDR, like uvicorn) can indeed bind it right away.
    with socket.socket() as restarted:
        restarted.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        restarted.bind(("127.0.0.1", port))
        restarted.listen()
        with socket.socket() as other:
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with pytest.raises(OSError):
                other.bind(("127.0.0.1", port))
            assert port_in_use(port)


def test_a_failed_initdb_is_tried_again_from_an_empty_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = EmbeddedPostgres(tmp_path / "pgdata", durable=False)
    real_run = server._run
    tools: list[str] = []

    def failing_once(tool: str, *args: str, **kwargs):  # type: ignore[no-untyped-def]
        tools.append(tool)
        if tool == "initdb" and tools.count("initdb") == 1:
            (server.data_dir / "half-written").mkdir()
            return subprocess.CompletedProcess([tool], 1, "", "a line from the forking process\n")
        return real_run(tool, *args, **kwargs)

    monkeypatch.setattr(server, "_run", failing_once)
    url = server.start()
    try:
        assert tools.count("initdb") == 2 and not (server.data_dir / "half-written").exists()
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        server.stop()


def test_initdb_that_keeps_failing_says_how(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = EmbeddedPostgres(tmp_path / "pgdata", durable=False)
    monkeypatch.setattr(server, "_run", lambda tool, *a, **k: subprocess.CompletedProcess([tool], 1, "", "no room\n"))
    with pytest.raises(InfraError, match=r"initdb failed \(exit 1\): no room"):
        server.start()
