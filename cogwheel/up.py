"""``cogwheel up``: servers, migrations, the six services, the seed model; then supervise until a signal."""

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from cogwheel.admin import ensure_admin
from cogwheel.credentials import Credentials
from cogwheel.provision import provision_nats
from cogwheel.seed import EXAMPLES, seed
from cogwheel.servers import Servers, migrate_database
from cogwheel.stack import Stack, StackError
from cogwheel.state import State
from libs.bus.nats import without_password
from libs.infra import InfraError, port_in_use

__all__ = ["run_up"]

_COLORS = ("36", "33", "35", "32", "34", "91", "96", "93")


def _console_echo() -> Callable[[str, str], None]:
    colors: dict[str, str] = {}
    tty = sys.stdout.isatty()

    def echo(name: str, line: str) -> None:
        color = colors.setdefault(name, _COLORS[len(colors) % len(_COLORS)])
        prefix = f"\033[{color}m{name:<20}|\033[0m" if tty else f"{name:<20}|"
        print(f"{prefix} {line}", flush=True)

    return echo


def say(message: str) -> None:
    print(f"cogwheel | {message}", flush=True)


async def _migrate(servers: Servers) -> None:
    applied = await migrate_database(servers.database_url, servers.credentials if servers.database_roles else None)
    count = sum(len(v) for v in applied.values()) if isinstance(applied, dict) else 0
    say(f"migrations applied: {count}")


async def _bring_up(data_dir: Path, port: int, servers: Servers, replicas: dict[str, int], *, tls: bool,
                    public_url: str) -> Stack:
    await servers.start()
    say(f"nats: {servers.service_nats_url}")
    say(f"postgres: {without_password(servers.database_url)}")
    await _migrate(servers)
    await provision_nats(servers.nats_url)
    stack = Stack(servers.service_nats_url, servers.database_url, data_dir, port, replicas, echo=_console_echo(),
                  notify=say, credentials=servers.credentials, nats_users=servers.nats_users,
                  database_roles=servers.database_roles, tls=tls, public_url=public_url)
    await stack.start()
    return stack


async def run_up(data_dir: Path, port: int, replicas: dict[str, int] | None = None, *, http: bool = False) -> int:
    """Run the installation in the foreground; returns the process exit code.

    The gateway serves HTTPS with a local CA's certificate unless ``http`` is set or ``COGWHEEL_PUBLIC_URL``
    names the origin of a TLS-terminating proxy in front of it (then it serves plain HTTP on loopback).
    """
    public_url = os.environ.get("COGWHEEL_PUBLIC_URL", "")
    state = State.load(data_dir)
    if state.running() and state.supervisor_pid != os.getpid():
        say(f"already running (pid {state.supervisor_pid}); see {data_dir / 'state.json'}")
        return 1
    if port_in_use(port):
        say(f"port 127.0.0.1:{port} is already in use (choose another with --port)")
        return 1
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)  # logs, credentials, state and the servers' files are the owner's alone
    (data_dir / "logs").mkdir(mode=0o700, exist_ok=True)
    credentials = Credentials.ensure(data_dir)
    # Seeding and the admin account below call the registry from this process.
    os.environ["COGWHEEL_RPC_TOKEN"] = credentials.rpc_token
    main = asyncio.current_task()
    assert main is not None
    stopping = asyncio.Event()

    def on_signal() -> None:
        if stopping.is_set():
            return
        stopping.set()
        main.cancel()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    servers = Servers(data_dir, credentials=credentials)
    stack: Stack | None = None
    try:
        stack = await _bring_up(data_dir, port, servers, replicas or {}, tls=not (http or public_url),
                                public_url=public_url)
        say(f"pushing example models: {', '.join(EXAMPLES)}")
        result = await seed(stack.registry_addr, servers.nats_url, token=state.token, token_id=state.token_id,
                            examples=tuple(EXAMPLES))
        admin = await ensure_admin(stack.registry_addr, state.admin_token, state.admin_token_id)
        state = State(
            base_url=stack.public_url or stack.base_url, ca_bundle=str(stack.tls.bundle) if stack.tls else "",
            token=result.token, token_id=result.token_id, version_id=result.version_id,
            admin_token=admin.token, admin_token_id=admin.token_id,
            nats_url=servers.nats_url, database_url=servers.database_url,
            registry_addr=stack.registry_addr, scheduler_addr=stack.scheduler_addr, supervisor_pid=os.getpid(),
            pids=stack.pids() | servers.pids(),
        )
        state.save(data_dir)

        def record_server_pids() -> None:
            current = State.load(data_dir)
            current.pids = stack.pids() | servers.pids()
            current.save(data_dir)

        servers.supervise(say, on_restart=record_server_pids)
        _banner(state, result.versions)
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        if not stopping.is_set():
            raise
    except (InfraError, StackError) as exc:
        say(str(exc))
        return 1
    except Exception as exc:  # a clear last line beats a traceback for a foreground command
        say(f"failed: {type(exc).__name__}: {exc}")
        return 1
    finally:
        say("stopping")
        with contextlib.suppress(Exception):
            if stack is not None:
                await stack.stop()
        await servers.stop()
        _mark_stopped(data_dir)
        say("stopped")
    return 0


def _banner(state: State, versions: dict[str, str]) -> None:
    say(f"ready: API {state.api_url}")
    say(f"token: {state.token}")
    say(f"admin token: {state.admin_token} (used by `cogwheel account` and `cogwheel token`)")
    for name, version in versions.items():
        say(f"model: cogwheel/{name} version {version}")
    say("in another shell: eval $(.venv/bin/cogwheel env)")


def _mark_stopped(data_dir: Path) -> None:
    state = State.load(data_dir)
    if state.supervisor_pid == os.getpid():
        state.supervisor_pid = None
        state.pids = {}
        state.save(data_dir)
