"""The six real service processes on a real NATS and PostgreSQL, two schedulers and two runners among them."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import nats
import pytest

from cogwheel.credentials import Credentials
from cogwheel.seed import seed
from cogwheel.stack import Stack
from libs.db import create_engine
from libs.infra import free_port
from libs.modelpkg import push_model_dir
from libs.pb.cogwheel.registry.v1 import registry_pb2 as pb
from libs.pb.cogwheel.registry.v1 import registry_pb2_grpc
from libs.rpc import RpcAlreadyExists, create_channel
from libs.testing.scheduler import forget_pending_work


@dataclass
class Platform:
    stack: Stack
    nats_url: str
    database_url: str
    token: str
    hello_version: str
    # The installation's internal gRPC token (the stack's servers refuse calls without it).
    rpc_token: str = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.stack.base_url, headers=self.headers, timeout=70,
                                 verify=self.stack.verify)

    async def push(self, owner: str, name: str, model_dir: Path, hardware: str = "cpu") -> str:
        """Register `owner/name` (public, on `hardware`) and push `model_dir` as its version."""
        channel = create_channel(self.stack.registry_addr, default_timeout=30, token=self.rpc_token)
        try:
            registry = registry_pb2_grpc.RegistryServiceStub(channel)
            try:
                await registry.CreateModel(
                    pb.CreateModelRequest(owner=owner, name=name, visibility="public", hardware=hardware)
                )
            except RpcAlreadyExists:
                pass
            nc = await nats.connect(self.nats_url)
            try:
                pushed = await push_model_dir(nc.jetstream(), model_dir)
            finally:
                await nc.close()
            await registry.CreateVersion(
                pb.CreateVersionRequest(
                    owner=owner,
                    name=name,
                    version_id=pushed.version_id,
                    openapi_schema_json=json.dumps(pushed.openapi_schema),
                    cog_version=pushed.cog_version,
                    package_key=pushed.package_key,
                    predictor_ref=pushed.predictor_ref,
                )
            )
            return pushed.version_id
        finally:
            await channel.close()


@pytest.fixture(scope="module")
def platform_replicas() -> dict[str, int]:
    """Processes per service; a module overrides this fixture to run a smaller or larger stack."""
    return {"scheduler": 2, "runner": 2, "gateway": 2}


@pytest.fixture(scope="module")
def platform_env() -> dict[str, str]:
    """Extra environment for every service; a module overrides this fixture to change settings."""
    return {}


@pytest.fixture(scope="module")
def platform_process_env() -> dict[str, dict[str, str]]:
    """Environment of single processes by name (e.g. a runner offering other hardware); a module overrides it."""
    return {}


@pytest.fixture(scope="module")
def platform_tls() -> bool:
    """Serve the gateway over HTTPS with a local CA, as `cogwheel up` does; a module overrides this fixture."""
    return False


@pytest.fixture(scope="module")
async def platform(
    nats_url: str,
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    platform_replicas: dict[str, int],
    platform_env: dict[str, str],
    platform_tls: bool,
    platform_process_env: dict[str, dict[str, str]],
) -> AsyncIterator[Platform]:
    data_dir = tmp_path_factory.mktemp("stack")
    # As under `cogwheel up`: the gRPC token and the secrets key pair (the shared test NATS has no users).
    credentials = Credentials.ensure(data_dir)
    stack = Stack(
        nats_url,
        database_url,
        data_dir,
        gateway_port=free_port(),
        replicas=platform_replicas,
        extra_env=platform_env,
        notify=lambda line: None,
        credentials=credentials,
        tls=platform_tls,
        process_env=platform_process_env,
    )
    with pytest.MonkeyPatch.context() as env:
        # Tests that call a service's gRPC API directly carry the token like any internal client.
        env.setenv("COGWHEEL_RPC_TOKEN", credentials.rpc_token)
        await stack.start(timeout=120)
        try:
            seeded = await seed(stack.registry_addr, nats_url)
            yield Platform(stack, nats_url, database_url, seeded.token, seeded.version_id, credentials.rpc_token)
        finally:
            await stack.stop()
            # The next module's stack shares this database: it must not inherit this one's unfinished work.
            engine = create_engine(database_url, pool_size=1)
            try:
                await forget_pending_work(engine)
            finally:
                await engine.dispose()


# -- the official npm client (tests/js, pinned by its package-lock.json) ------------------------------------

JS_DIR = Path(__file__).resolve().parents[1] / "js"
NETWORK_ERRORS = ("ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "ECONNREFUSED", "ENETUNREACH")


async def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *args, cwd=JS_DIR, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return process.returncode or 0, out.decode(), err.decode()


def _installed_matches_lock() -> bool:
    """npm ci wipes node_modules, so it runs only when the installed client is not the locked one."""
    lock = json.loads((JS_DIR / "package-lock.json").read_text())
    wanted = lock["packages"]["node_modules/replicate"]["version"]
    installed = JS_DIR / "node_modules" / "replicate" / "package.json"
    return installed.is_file() and json.loads(installed.read_text()).get("version") == wanted


@pytest.fixture(scope="module")
async def js_client() -> Path:
    """`tests/js/replicate_client.mjs`, with the locked `replicate` npm package installed beside it."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed to run the replicate npm client (tests/js)")
    if not _installed_matches_lock():
        code, out, err = await _run("npm", "ci", "--no-audit", "--no-fund")
        if code != 0 and any(marker in err for marker in NETWORK_ERRORS):
            pytest.skip(f"npm ci could not reach the registry: {err.strip().splitlines()[-1]}")
        assert code == 0, f"npm ci failed:\n{out}\n{err}"
    return JS_DIR / "replicate_client.mjs"


@pytest.fixture
def node() -> Callable[..., Awaitable[tuple[int, str, str]]]:
    """Runs a script of tests/js with node: ``await node(script, env=..., timeout=...)`` -> (code, out, err)."""

    async def run(script: str, *, env: dict[str, str] | None = None, timeout: float = 120) -> tuple[int, str, str]:
        return await _run("node", script, env=env, timeout=timeout)

    return run
