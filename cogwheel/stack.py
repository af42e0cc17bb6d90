"""Supervises the six Cogwheel service processes: ports, env, health, restarts with backoff, orderly stop."""

import asyncio
import contextlib
import os
import signal
import ssl
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import httpx

from cogwheel.credentials import Credentials
from cogwheel.process import ServiceProcess, child_env
from cogwheel.tls import LocalTls, ensure_local_tls
from libs.infra import InfraError, free_port, port_in_use

__all__ = ["SERVICES", "Stack", "StackError"]

# Start order: what others call first comes up first (all start at once; order only shapes the logs).
SERVICES = ("registry", "scheduler", "runner", "webhook_dispatcher", "billing", "gateway")
GRPC_SERVICES = ("registry", "scheduler", "webhook_dispatcher")
LOOPBACK = "127.0.0.1"
# A local installation posts webhooks to receivers on this machine; deployments allow nothing private by default.
LOCAL_WEBHOOK_NETWORKS = "127.0.0.0/8,::1/128"


class StackError(RuntimeError):
    """The stack could not start; the message names the service and carries its log tail."""


def _grpc_target(ports: list[int]) -> str:
    # Several replicas: a gRPC multi-address target, so clients fail over when one replica dies.
    if len(ports) == 1:
        return f"{LOOPBACK}:{ports[0]}"
    return "ipv4:" + ",".join(f"{LOOPBACK}:{p}" for p in ports)


class Stack:
    """The service processes of one Cogwheel installation.

    Args:
        nats_url: JetStream server every service connects to.
        database_url: ``postgresql://`` URL of the application database.
        data_dir: holds ``logs/<service>-<n>.log``; passed to services as ``COGWHEEL_DATA_DIR``.
        gateway_port: HTTP port of the (first) gateway.
        replicas: processes per service, e.g. ``{"scheduler": 2, "runner": 2}``; others default to 1.
        services: which services to run (all six by default); handy for tests that need only some.
        echo: called with ``(process_name, line)`` for every output line; None keeps output in log files only.
        extra_env: added to every child's environment (after the defaults, so it can override them).
        auto_restart: restart a process that exits unexpectedly, with exponential backoff.
        credentials: the installation's internal credentials: each process gets the gRPC token, its side of
            the secrets key pair and, with ``nats_users``, its own NATS user.
        process_env: added to the environment of single processes, by process name.
        nats_users: the NATS server checks the users of ``credentials`` (an embedded server configured so).
        database_roles: each service logs in as its schema's role of ``credentials`` (the roles exist: see
            ``libs.db.roles``); otherwise every service uses ``database_url``.
        tls: serve the gateway over HTTPS with a certificate of the local CA under ``<data_dir>/tls``
            (created on first use); every child trusts that CA. ``cogwheel up`` does this by default.
        public_url: the origin clients use when it is not the gateway itself (a TLS-terminating proxy);
            absolute URLs in responses are built on it.
    """

    def __init__(
        self,
        nats_url: str,
        database_url: str,
        data_dir: str | Path,
        gateway_port: int = 8000,
        replicas: dict[str, int] | None = None,
        *,
        echo: Callable[[str, str], None] | None = None,
        extra_env: dict[str, str] | None = None,
        auto_restart: bool = True,
        notify: Callable[[str], None] = print,
        services: Iterable[str] = SERVICES,
        credentials: Credentials | None = None,
        nats_users: bool = False,
        database_roles: bool = False,
        tls: bool = False,
        public_url: str = "",
        process_env: dict[str, dict[str, str]] | None = None,
    ) -> None:
        # Environment of single processes by name (e.g. ``{"runner-2": {"COGWHEEL_HARDWARE": "gpu"}}``).
        self._process_env = process_env or {}
        self.data_dir = Path(data_dir).resolve()
        self.gateway_port = gateway_port
        self.tls: LocalTls | None = ensure_local_tls(self.data_dir) if tls else None
        self.public_url = public_url.rstrip("/")
        self.echo = echo
        self.notify = notify
        self.auto_restart = auto_restart
        wanted = set(services)
        unknown = wanted - set(SERVICES)
        if unknown:
            raise ValueError(f"unknown services: {', '.join(sorted(unknown))}")
        counts = {svc: (replicas or {}).get(svc, 1) if svc in wanted else 0 for svc in SERVICES}
        # Addresses are fixed up front so that a restarted replica comes back where clients expect it.
        grpc_ports = {svc: [free_port() for _ in range(max(counts[svc], 1))] for svc in GRPC_SERVICES}
        self.registry_addr = _grpc_target(grpc_ports["registry"])
        self.scheduler_addr = _grpc_target(grpc_ports["scheduler"])
        self.webhooks_addr = _grpc_target(grpc_ports["webhook_dispatcher"])
        shared = child_env() | {
            "COGWHEEL_NATS_URL": nats_url,
            "COGWHEEL_DATABASE_URL": database_url,
            "COGWHEEL_REGISTRY_ADDR": self.registry_addr,
            "COGWHEEL_SCHEDULER_ADDR": self.scheduler_addr,
            "COGWHEEL_WEBHOOKS_ADDR": self.webhooks_addr,
            "COGWHEEL_WEBHOOK_ALLOWED_NETWORKS": os.environ.get(
                "COGWHEEL_WEBHOOK_ALLOWED_NETWORKS", LOCAL_WEBHOOK_NETWORKS
            ),
            "COGWHEEL_PUBLIC_URL": self.public_url or self.base_url,
            "COGWHEEL_DATA_DIR": str(self.data_dir),
        } | (self.tls.client_env() if self.tls else {}) | (extra_env or {})
        self.processes: dict[str, ServiceProcess] = {}
        for svc in SERVICES:
            env = shared
            if credentials is not None:
                env = shared | credentials.service_env(svc, nats=nats_users,
                                                       database_url=database_url if database_roles else None)
            for i in range(counts[svc]):
                self._add(svc, i, env, grpc_ports.get(svc))
        self._held: set[str] = set()
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._stopping = False

    def _add(self, svc: str, i: int, shared: dict[str, str], grpc_ports: list[int] | None) -> None:
        health_port = free_port()
        env = shared | {"COGWHEEL_HEALTH_PORT": str(health_port), "COGWHEEL_INSTANCE_ID": f"{svc}-{i + 1}"}
        env |= self._process_env.get(f"{svc}-{i + 1}", {})
        health_url = f"http://{LOOPBACK}:{health_port}/readyz"
        if grpc_ports:
            env["COGWHEEL_GRPC_PORT"] = str(grpc_ports[i])
        if svc == "gateway":
            port = self.gateway_port if i == 0 else free_port()
            env["COGWHEEL_PORT"] = str(port)
            scheme = "http"
            if self.tls:
                env["COGWHEEL_SSL_CERTFILE"] = str(self.tls.server_cert)
                env["COGWHEEL_SSL_KEYFILE"] = str(self.tls.server_key)
                scheme = "https"
            health_url = f"{scheme}://{LOOPBACK}:{port}/readyz"
        proc = ServiceProcess(svc, i + 1, env, self.data_dir / "logs" / f"{svc}-{i + 1}.log", health_url,
                              cwd=Path.cwd())
        self.processes[proc.name] = proc

    @property
    def base_url(self) -> str:
        """Origin of the first gateway, e.g. ``https://127.0.0.1:8000`` (the API lives under ``/v1``)."""
        return f"{'https' if self.tls else 'http'}://{LOOPBACK}:{self.gateway_port}"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What an HTTP client of this stack passes as ``verify`` (trusts the local CA when TLS is on)."""
        return self.tls.ssl_context() if self.tls else True

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/v1"

    def pids(self) -> dict[str, int | None]:
        return {name: p.pid for name, p in self.processes.items()}

    def names(self, service: str) -> list[str]:
        """Process names of one service, e.g. ``["scheduler-1", "scheduler-2"]``."""
        return [name for name, p in self.processes.items() if p.service == service]

    async def start(self, timeout: float = 90.0) -> None:
        """Spawn every process and wait until each is ready.

        Ready: ``GET /readyz`` answers 200, so its NATS and PostgreSQL answer.
        """
        if "gateway-1" in self.processes and port_in_use(self.gateway_port):
            raise InfraError(f"gateway: port {LOOPBACK}:{self.gateway_port} is already in use")
        for name in self.processes:
            await self.start_process(name)
        try:
            await self.wait_healthy(timeout=timeout)
        except BaseException:
            await self.stop()
            raise

    async def start_process(self, name: str) -> None:
        """(Re)start one process that is not running and put it back under supervision."""
        proc = self.processes[name]
        self._held.discard(name)
        if proc.running():
            return
        await proc.spawn(self.echo)
        self._watchers[name] = asyncio.create_task(self._watch(proc), name=f"watch-{name}")

    async def _watch(self, proc: ServiceProcess) -> None:
        backoff = 1.0
        while True:
            started = time.monotonic()
            code = await proc.wait()
            proc.exits += 1
            if self._stopping or proc.name in self._held:
                return
            if time.monotonic() - started > 60:
                backoff = 1.0
            if not self.auto_restart:
                self.notify(f"{proc.name} exited with code {code}")
                return
            self.notify(f"{proc.name} exited with code {code}; restarting in {backoff:.0f}s")
            await asyncio.sleep(backoff)
            if self._stopping or proc.name in self._held:
                return
            backoff = min(backoff * 2, 30.0)
            await proc.spawn(self.echo)

    async def wait_healthy(self, names: Iterable[str] | None = None, timeout: float = 90.0) -> None:
        """Block until every named process (all by default) reports healthy; StackError on timeout."""
        pending = list(names or self.processes)
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2.0, verify=self.verify) as client:
            while pending:
                still = []
                for name in pending:
                    proc = self.processes[name]
                    if await self._healthy(client, proc):
                        proc.exits = 0
                    else:
                        still.append(name)
                pending = still
                for name in pending:
                    self._fail_if_crashing(self.processes[name])
                if not pending:
                    return
                if time.monotonic() > deadline:
                    self._raise_unhealthy(self.processes[pending[0]], f"not healthy after {timeout:.0f}s")
                await asyncio.sleep(0.25)

    @staticmethod
    async def _healthy(client: httpx.AsyncClient, proc: ServiceProcess) -> bool:
        if not proc.running():
            return False
        try:
            return (await client.get(proc.health_url)).status_code == 200
        except httpx.HTTPError:
            return False

    def _fail_if_crashing(self, proc: ServiceProcess) -> None:
        # A process that keeps dying before it is ever healthy will not heal by waiting out the timeout.
        if proc.exits >= 3:
            self._raise_unhealthy(proc, f"exited {proc.exits} times during startup")

    @staticmethod
    def _raise_unhealthy(proc: ServiceProcess, why: str) -> None:
        raise StackError(f"{proc.name} {why}; last lines of {proc.log_path}:\n{proc.log_tail()}")

    async def kill(self, name: str, sig: int = signal.SIGKILL, restart: bool = True) -> None:
        """Send ``sig`` to one process; with ``restart=False`` it stays down until ``start_process``."""
        proc = self.processes[name]
        if not restart:
            self._held.add(name)
        proc.signal(sig)
        if proc.proc is not None:
            await proc.wait()

    async def stop_process(self, name: str, grace: float = 10.0) -> None:
        """Gracefully stop one process and keep it stopped."""
        self._held.add(name)
        await self.processes[name].terminate(grace)

    async def restart_process(self, name: str, grace: float = 10.0) -> None:
        await self.stop_process(name, grace)
        await self.start_process(name)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop everything: gateway first (no new work), then the rest; SIGKILL after ``grace``."""
        self._stopping = True
        gateways = [p for p in self.processes.values() if p.service == "gateway"]
        others = [p for p in self.processes.values() if p.service != "gateway"]
        for group in (gateways, others):
            await asyncio.gather(*(p.terminate(grace) for p in group))
        for task in self._watchers.values():
            task.cancel()
        for task in self._watchers.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._watchers.clear()

    async def __aenter__(self) -> "Stack":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
