"""Deployments and the hardware catalogue through the real services, with both official clients."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
import pytest

from libs.bus.subjects import queue_key, runner_queue
from libs.pb.cogwheel.registry.v1 import registry_pb2 as pb
from libs.pb.cogwheel.registry.v1 import registry_pb2_grpc
from libs.rpc import create_channel

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "predictors"
HELLO = "cogwheel/hello-world"


@pytest.fixture(scope="module")
def platform_replicas() -> dict[str, int]:
    return {"scheduler": 1, "runner": 1, "gateway": 1}


@pytest.fixture(scope="module")
def platform_env() -> dict[str, str]:
    # Idle instances stop within seconds, so a deployment whose instances scaled to zero can be deleted soon.
    return {"COGWHEEL_SCALE_TO_ZERO_SECONDS": "3", "COGWHEEL_SCALE_IN_SECONDS": "2"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def wait_until(check: Callable[[], Awaitable[Any]], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.2)


async def new_user_token(platform, username: str) -> str:
    channel = create_channel(platform.stack.registry_addr, default_timeout=30)
    try:
        registry = registry_pb2_grpc.RegistryServiceStub(channel)
        await registry.EnsureAccount(pb.EnsureAccountRequest(username=username, name=username))
        return (await registry.CreateToken(pb.CreateTokenRequest(username=username, name="e2e"))).token
    finally:
        await channel.close()


def _python_client_flow(base_url: str, token: str, version: str, name: str) -> dict[str, Any]:
    import replicate

    client = replicate.Client(api_token=token, base_url=base_url)
    report: dict[str, Any] = {"hardware": [(h.sku, h.name) for h in client.hardware.list()]}
    created = client.deployments.create(
        name=name, model=HELLO, version=version, hardware="cpu", min_instances=0, max_instances=1
    )
    report["created"] = created.dict()
    report["got"] = client.deployments.get(f"{created.owner}/{name}").dict()
    updated = client.deployments.update(created.owner, name, min_instances=1, max_instances=3)
    report["updated"] = updated.dict()
    report["listed"] = [f"{d.owner}/{d.name}" for d in client.deployments.list().results]
    prediction = updated.predictions.create(input={"text": "deployment"}, wait=True)
    report["prediction"] = {"status": prediction.status, "output": prediction.output, "id": prediction.id}
    # min_instances keeps an instance online: the delete is refused, in Replicate's error format.
    try:
        client.deployments.delete(created.owner, name)
        report["refused"] = None
    except replicate.exceptions.ReplicateError as exc:
        report["refused"] = {"status": exc.status, "title": exc.title, "detail": exc.detail}
    client.deployments.update(created.owner, name, min_instances=0)
    report["deleted"] = _delete_once_scaled_to_zero(client, created.owner, name)
    try:
        client.deployments.get(f"{created.owner}/{name}")
        report["after_delete"] = "still there"
    except replicate.exceptions.ReplicateError as exc:
        report["after_delete"] = exc.status
    return report


def _delete_once_scaled_to_zero(client, owner: str, name: str, timeout: float = 90) -> bool:
    """Delete, retrying while the deployment's instances are still online (409) as a client would."""
    import replicate

    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.deployments.delete(owner, name)
        except replicate.exceptions.ReplicateError as exc:
            if exc.status != 409 or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


async def test_python_client_creates_updates_runs_and_deletes_a_deployment(platform) -> None:
    name = unique("py-app")
    report = await asyncio.to_thread(_python_client_flow, platform.stack.base_url, platform.token,
                                     platform.hello_version, name)
    assert report["hardware"][0] == ("cpu", "CPU")
    assert ("gpu-t4", "Nvidia T4 GPU") in report["hardware"] and len(report["hardware"]) >= 5
    release = report["created"]["current_release"]
    assert (report["created"]["owner"], report["created"]["name"]) == ("cogwheel", name)
    assert (release["number"], release["model"], release["version"]) == (1, HELLO, platform.hello_version)
    assert release["configuration"] == {"hardware": "cpu", "min_instances": 0, "max_instances": 1}
    assert release["created_by"]["username"] == "cogwheel" and release["created_by"]["type"] == "organization"
    assert report["got"] == report["created"]
    updated = report["updated"]["current_release"]
    assert updated["number"] == 2
    assert updated["configuration"] == {"hardware": "cpu", "min_instances": 1, "max_instances": 3}
    assert f"cogwheel/{name}" in report["listed"]
    assert report["prediction"]["status"] == "succeeded" and report["prediction"]["output"] == "hello deployment"
    refused = report["refused"]
    assert refused is not None and refused["status"] == 409 and refused["title"] == "Conflict", refused
    assert f"cogwheel/{name} has 1 instance(s) online" in refused["detail"] and "min_instances" in refused["detail"]
    assert report["deleted"] is True and report["after_delete"] == 404

    async with platform.client() as client:
        body = (await client.get(f"/v1/predictions/{report['prediction']['id']}")).json()
    assert body["deployment"] == f"cogwheel/{name}" and body["version"] == platform.hello_version


async def test_js_client_drives_deployments(platform, js_client: Path, node) -> None:
    name = unique("js-app")
    env = {
        **os.environ,
        "COGWHEEL_API_URL": f"{platform.stack.base_url}/v1",
        "REPLICATE_API_TOKEN": platform.token,
        "COGWHEEL_MODEL": HELLO,
        "COGWHEEL_VERSION": platform.hello_version,
        "COGWHEEL_DEPLOYMENT": name,
    }
    code, out, err = await node(str(js_client.parent / "deployments_client.mjs"), env=env, timeout=120)
    assert code == 0, f"node exited {code}:\n{out}\n{err}"
    report = json.loads(out.strip().splitlines()[-1])
    assert report["hardware"][0] == "cpu" and "gpu-h100" in report["hardware"]
    assert report["created"]["release"]["number"] == 1 and report["fetched_number"] == 1
    assert report["updated"] == {
        "number": 2, "configuration": {"hardware": "cpu", "min_instances": 0, "max_instances": 2}
    }
    assert f"cogwheel/{name}" in report["listed"]
    assert report["prediction"] == {"status": "succeeded", "output": "hello js deployment",
                                    "deployment": f"cogwheel/{name}"}
    assert report["bad_hardware_status"] == 422
    assert set(report["delete_statuses"]) <= {409}
    assert report["deleted"] is True and report["missing_status"] == 404


async def test_validation_access_and_hardware_routing(platform) -> None:
    outsider = await new_user_token(platform, unique("outsider"))
    name = unique("gpu-app")
    async with platform.client() as client:
        unknown_sku = await client.post("/v1/models", json={"owner": "cogwheel", "name": unique("m"),
                                                            "visibility": "public", "hardware": "gpu-a40-small"})
        assert unknown_sku.status_code == 422
        assert "gpu-t4" in unknown_sku.json()["detail"]
        assert unknown_sku.json()["invalid_fields"][0]["field"] == "hardware"
        model_on_t4 = await client.post("/v1/models", json={"owner": "cogwheel", "name": unique("m"),
                                                            "visibility": "private", "hardware": "gpu-t4"})
        assert model_on_t4.status_code == 201, model_on_t4.text

        base = {"name": name, "model": HELLO, "version": platform.hello_version, "hardware": "gpu-t4",
                "min_instances": 0, "max_instances": 1}
        bad = {
            "hardware": {**base, "hardware": "tpu"},
            "max_instances": {**base, "max_instances": 0},
            "min_instances": {**base, "min_instances": 6},
        }
        for field, body in bad.items():
            refused = await client.post("/v1/deployments", json=body)
            assert refused.status_code == 422, refused.text
            assert field in refused.json()["detail"]
        crossed = await client.post("/v1/deployments", json={**base, "min_instances": 3, "max_instances": 2})
        assert crossed.status_code == 422 and "min_instances" in crossed.json()["detail"]
        wrong_version = await client.post("/v1/deployments", json={**base, "version": "0" * 64})
        assert wrong_version.status_code == 422 and "version" in wrong_version.json()["detail"]

        created = await client.post("/v1/deployments", json=base)
        assert created.status_code == 200, created.text
        again = await client.post("/v1/deployments", json=base)
        assert again.status_code == 409

        # Others see nothing of it.
        as_outsider = {"Authorization": f"Bearer {outsider}"}
        for method, path in (("GET", f"/v1/deployments/cogwheel/{name}"), ("PATCH", f"/v1/deployments/cogwheel/{name}"),
                             ("DELETE", f"/v1/deployments/cogwheel/{name}"),
                             ("POST", f"/v1/deployments/cogwheel/{name}/predictions")):
            body = {"input": {}} if method == "POST" else {"max_instances": 2} if method == "PATCH" else None
            seen = await client.request(method, path, json=body, headers=as_outsider)
            assert seen.status_code == 404, (method, seen.text)
        listed = (await client.get("/v1/deployments", headers=as_outsider)).json()
        assert listed["results"] == []

        # A gpu-t4 deployment's jobs go to its own queue on the runners of its label (`gpu` in the default
        # catalogue).
        queued = await client.post(f"/v1/deployments/cogwheel/{name}/predictions", json={"input": {"text": "gpu"}})
        assert queued.status_code == 201 and queued.json()["deployment"] == f"cogwheel/{name}"
        nc = await nats.connect(platform.nats_url)

        async def job_on_gpu_subject() -> bool:
            try:
                job = await nc.jetstream().get_last_msg(
                    "RUNNER_JOBS", runner_queue("gpu", queue_key(platform.hello_version, f"cogwheel/{name}")))
            except nats.js.errors.NotFoundError:
                return False
            return json.loads(job.data)["prediction_id"] == queued.json()["id"]

        try:
            await wait_until(job_on_gpu_subject, timeout=30)
        finally:
            await nc.close()
        busy = await client.delete(f"/v1/deployments/cogwheel/{name}")
        assert busy.status_code == 409 and "still running" in busy.json()["detail"]
        await client.post(f"/v1/predictions/{queued.json()['id']}/cancel")

        async def deleted() -> bool:
            return (await client.delete(f"/v1/deployments/cogwheel/{name}")).status_code == 204

        await wait_until(deleted)
        assert (await client.get(f"/v1/deployments/cogwheel/{name}")).status_code == 404


async def test_delete_is_refused_while_a_prediction_runs(platform) -> None:
    version = await platform.push("cogwheel", "sleeper", FIXTURES / "sleeper")
    name = unique("sleepy")
    async with platform.client() as client:
        created = await client.post("/v1/deployments", json={
            "name": name, "model": "cogwheel/sleeper", "version": version, "hardware": "cpu",
            "min_instances": 0, "max_instances": 1,
        })
        assert created.status_code == 200, created.text
        started = await client.post(f"/v1/deployments/cogwheel/{name}/predictions", json={"input": {"seconds": 60}})
        prediction_id = started.json()["id"]

        async def processing() -> bool:
            return (await client.get(f"/v1/predictions/{prediction_id}")).json()["status"] == "processing"

        await wait_until(processing, timeout=120)
        busy = await client.delete(f"/v1/deployments/cogwheel/{name}")
        assert busy.status_code == 409, busy.text
        assert f"cogwheel/{name}" in busy.json()["detail"]
        assert (await client.get(f"/v1/deployments/cogwheel/{name}")).status_code == 200
        await client.post(f"/v1/predictions/{prediction_id}/cancel")

        async def gone() -> bool:
            return (await client.delete(f"/v1/deployments/cogwheel/{name}")).status_code == 204

        await wait_until(gone, timeout=60)
