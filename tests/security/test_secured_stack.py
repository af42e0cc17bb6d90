"""A ``cogwheel up``-like installation (embedded NATS with per-service users, embedded PostgreSQL, all six
services with their credentials): internal gRPC needs the token, and a planted secret input reaches the model
while no file of PostgreSQL (WAL included), of JetStream, of any log or elsewhere in the data directory holds it
in clear, and its webhooks show it masked."""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from cogwheel.credentials import Credentials
from cogwheel.provision import provision_nats
from cogwheel.seed import seed
from cogwheel.servers import migrate_database, with_user
from cogwheel.stack import Stack
from libs.db.migrations import service_schemas
from libs.db.roles import role_for, url_for_role
from libs.infra import EmbeddedNats, EmbeddedPostgres, free_port
from libs.modelpkg import push_model_dir
from libs.pb.cogwheel.registry.v1 import registry_pb2 as pb
from libs.pb.cogwheel.registry.v1 import registry_pb2_grpc
from libs.pb.cogwheel.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from libs.rpc import RpcUnauthenticated, create_channel
from libs.testing.polling import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

PREDICTORS = Path(__file__).parents[1] / "fixtures" / "predictors"


@dataclass
class Installation:
    data_dir: Path
    stack: Stack
    credentials: Credentials
    nats: EmbeddedNats
    postgres: EmbeddedPostgres
    token: str
    version: str


async def _push(registry_addr: str, nats_url: str, rpc_token: str, name: str) -> str:
    """Push the fixture predictor `name` (its directory's name with dashes) as cogwheel/<name>."""
    import nats

    channel = create_channel(registry_addr, default_timeout=30, token=rpc_token)
    try:
        registry = registry_pb2_grpc.RegistryServiceStub(channel)
        await registry.CreateModel(pb.CreateModelRequest(owner="cogwheel", name=name, visibility="public",
                                                         hardware="cpu"))
        nc = await nats.connect(nats_url)
        try:
            pushed = await push_model_dir(nc.jetstream(), PREDICTORS / name.replace("-", "_"))
        finally:
            await nc.close()
        await registry.CreateVersion(pb.CreateVersionRequest(
            owner="cogwheel", name=name, version_id=pushed.version_id,
            openapi_schema_json=json.dumps(pushed.openapi_schema), cog_version=pushed.cog_version,
            package_key=pushed.package_key, predictor_ref=pushed.predictor_ref,
        ))
        return pushed.version_id
    finally:
        await channel.close()


@pytest.fixture(scope="module")
async def installation() -> AsyncIterator[Installation]:
    # Not under pytest's base temp dir: each new pytest session makes that owner-only again, and the
    # embedded PostgreSQL may run as an unprivileged account that must reach its data directory.
    data_dir = Path(tempfile.mkdtemp(prefix="cogwheel-installation-"))
    credentials = Credentials.ensure(data_dir)
    nats_server = EmbeddedNats(data_dir / "nats", config=credentials.nats_config())
    postgres = EmbeddedPostgres(data_dir / "pgdata", durable=False,
                                password=credentials.postgres_superuser_password)
    await nats_server.astart()
    await postgres.astart()
    admin_nats = with_user(nats_server.url, *credentials.admin_nats())
    stack: Stack | None = None
    try:
        await migrate_database(postgres.url, credentials)
        await provision_nats(admin_nats)
        stack = Stack(nats_server.url, postgres.url, data_dir, gateway_port=free_port(), notify=lambda line: None,
                      credentials=credentials, nats_users=True, database_roles=True)
        with pytest.MonkeyPatch.context() as env:
            env.setenv("COGWHEEL_RPC_TOKEN", credentials.rpc_token)
            await stack.start(timeout=180)
            seeded = await seed(stack.registry_addr, admin_nats, examples=())
            version = await _push(stack.registry_addr, admin_nats, credentials.rpc_token, "kitchen-sink")
        yield Installation(data_dir, stack, credentials, nats_server, postgres, seeded.token, version)
    finally:
        if stack is not None:
            await stack.stop()
        await postgres.astop()
        await nats_server.astop()
        shutil.rmtree(data_dir, ignore_errors=True)


async def test_internal_grpc_refuses_calls_without_the_token(installation: Installation) -> None:
    for token in ("", "not-the-token"):
        channel = create_channel(installation.stack.registry_addr, default_timeout=10, token=token)
        try:
            registry = registry_pb2_grpc.RegistryServiceStub(channel)
            with pytest.raises(RpcUnauthenticated):
                await registry.EnsureAccount(pb.EnsureAccountRequest(username="intruder", type="user", admin=True))
            with pytest.raises(RpcUnauthenticated):
                await registry.CreateToken(pb.CreateTokenRequest(username="admin", name="stolen"))
        finally:
            await channel.close()
        channel = create_channel(installation.stack.scheduler_addr, default_timeout=10, token=token)
        try:
            with pytest.raises(RpcUnauthenticated):
                await scheduler_pb2_grpc.SchedulerServiceStub(channel).GetPrediction(
                    scheduler_pb2.GetPredictionRequest(id="anything"))
        finally:
            await channel.close()
    # The refused call created nothing.
    channel = create_channel(installation.stack.registry_addr, default_timeout=10,
                             token=installation.credentials.rpc_token)
    try:
        accounts = await registry_pb2_grpc.RegistryServiceStub(channel).ListAccounts(pb.ListAccountsRequest())
        assert "intruder" not in [a.username for a in accounts.accounts]
    finally:
        await channel.close()


async def test_each_service_role_reaches_its_own_schema_only(installation: Installation) -> None:
    schemas = list(service_schemas())
    assert set(schemas) == set(installation.credentials.schema_passwords())
    for schema in schemas:
        url = url_for_role(installation.postgres.url, role_for(schema),
                           installation.credentials.postgres_passwords[schema])
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute(f"SELECT count(*) FROM {schema}.events")  # its own: allowed
            for other in schemas:
                if other == schema:
                    continue
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    await conn.execute(f"SELECT count(*) FROM {other}.events")
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    await conn.execute(f"SELECT count(*) FROM {other}.outbox")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                await conn.execute("CREATE SCHEMA intruder")
    # Without the password nobody gets in, not even as the superuser.
    for user in ("postgres", role_for("scheduler")):
        with pytest.raises(psycopg.OperationalError, match="password"):
            await psycopg.AsyncConnection.connect(
                f"postgresql://{user}:wrong@127.0.0.1:{installation.postgres.port}/cogwheel", connect_timeout=5)


async def test_outputs_over_the_message_limit_arrive_within_the_runners_permissions(
    installation: Installation,
) -> None:
    """A report or stream item too large for one NATS message goes by reference: the runner's user stores it."""
    admin_nats = with_user(installation.nats.url, *installation.credentials.admin_nats())
    version = await _push(installation.stack.registry_addr, admin_nats, installation.credentials.rpc_token,
                          "big-output")
    size = 1536 * 1024
    async with httpx.AsyncClient(base_url=installation.stack.base_url, timeout=120,
                                 headers={"Authorization": f"Bearer {installation.token}"}) as client:
        created = await client.post("/v1/predictions", headers={"Prefer": "wait=60"},
                                    json={"version": version, "input": {"size": size, "items": 1}})
        assert created.status_code == 201, created.text
        prediction_id = created.json()["id"]

        async def finished() -> dict | None:
            body = (await client.get(f"/v1/predictions/{prediction_id}")).json()
            return body if body["status"] in ("succeeded", "failed", "canceled") else None

        body = await wait_until(finished, timeout=120, interval=0.5)
    assert body["status"] == "succeeded", body.get("error")
    assert [len(item) for item in body["output"]] == [size, size]
    assert body["output"][0] == "i" * size


def _files_holding(root: Path, needle: bytes) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if needle in path.read_bytes():
                    found.append(path)
            except OSError:
                continue
    return found


@pytest.fixture
def webhook_receiver() -> Iterator[tuple[str, list[bytes]]]:
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            bodies.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", bodies
    server.shutdown()
    server.server_close()


async def test_a_planted_secret_is_nowhere_at_rest_in_clear(
    installation: Installation, webhook_receiver: tuple[str, list[bytes]]
) -> None:
    planted = f"planted-secret-{uuid.uuid4().hex}"
    visible = f"visible-text-{uuid.uuid4().hex[:12]}"
    document = "data:text/plain;base64," + base64.b64encode(b"note").decode()
    webhook, delivered = webhook_receiver
    async with httpx.AsyncClient(base_url=installation.stack.base_url, timeout=60,
                                 headers={"Authorization": f"Bearer {installation.token}"}) as client:
        created = await client.post("/v1/predictions", json={
            "version": installation.version, "input": {"text": visible, "document": document, "token": planted},
            "webhook": webhook, "webhook_events_filter": ["start", "completed"]})
        assert created.status_code == 201, created.text
        prediction_id = created.json()["id"]

        async def finished() -> dict | None:
            body = (await client.get(f"/v1/predictions/{prediction_id}")).json()
            return body if body["status"] in ("succeeded", "failed", "canceled") else None

        body = await wait_until(finished, timeout=240, interval=0.5)
    assert body["status"] == "succeeded", body
    assert body["output"]["secret_length"] == len(planted)  # the model did receive the value
    assert body["input"]["token"] == "**********"

    async def completed_delivered() -> bool:
        return any(json.loads(raw)["status"] == "succeeded" for raw in delivered)

    await wait_until(completed_delivered, timeout=60, interval=0.2)
    for raw in delivered:  # the webhook shows the input as the API does
        assert json.loads(raw)["input"]["token"] == "**********" and planted.encode() not in raw

    # Stopping flushes everything (PostgreSQL checkpoints, JetStream syncs, logs close).
    await installation.stack.stop()
    await installation.postgres.astop()
    await installation.nats.astop()
    searched = {
        "postgres": installation.postgres.data_dir,
        "jetstream": installation.nats.data_dir,
        "logs": installation.data_dir / "logs",
        # Everything else the services keep: the runner's caches and sandbox scratch, the gateway's uploads.
        "the data directory": installation.data_dir,
    }
    assert (installation.postgres.data_dir / "pg_wal").is_dir()
    assert list((installation.data_dir / "logs").glob("runner-*.log"))
    # The search works: the ordinary input is stored (events, projections, the job) where expected.
    assert _files_holding(searched["postgres"], visible.encode())
    assert _files_holding(searched["jetstream"], visible.encode())
    for what, root in searched.items():
        assert _files_holding(root, planted.encode()) == [], f"the planted secret is in clear in {what}"
    credentials = installation.credentials
    for value in (*credentials.nats_passwords.values(), *credentials.postgres_passwords.values(),
                  credentials.rpc_token, credentials.secrets_private_key_file.read_text().strip()):
        assert _files_holding(searched["logs"], value.encode()) == [], "a credential is in a service log"
    # Every service did its work within its NATS permissions (a refused request is logged by the client).
    assert _files_holding(searched["logs"], b"ermissions violation") == []
    assert _files_holding(searched["logs"], b"ermissions Violation") == []
