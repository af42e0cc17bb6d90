"""deploy/kubernetes/ against real servers: the Secrets make_secrets.py writes, the setup Job's own script, then
every service started with its workload's command and environment (ConfigMap, Secrets) turns ready.

NATS runs with the authorization block make_secrets.py writes (a user per service, the runner confined), and
PostgreSQL is given by an administrator's URL, as an operator's would be. Addresses and ports are local ones.
"""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from cogwheel.credentials import Credentials
from cogwheel.stack import SERVICES
from libs.infra import EmbeddedNats, EmbeddedPostgres, free_port

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"


def _manifests() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    return [doc for name in kustomization["resources"] for doc in yaml.safe_load_all((KUBERNETES / name).read_text())
            if doc]


def _make_secrets(argv: list[str]) -> list[dict[str, Any]]:
    out = io.StringIO()
    with redirect_stdout(out):
        spec = importlib.util.spec_from_file_location("make_secrets", KUBERNETES / "make_secrets.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert module.main(argv) == 0
    return [doc for doc in yaml.safe_load_all(out.getvalue()) if doc]


def _environment(
    container: dict[str, Any], config: dict[str, str], secrets: dict[str, dict[str, str]]
) -> dict[str, str]:
    """The container's variables as the kubelet would set them."""
    env = dict(config) if container.get("envFrom") else {}
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = secrets[ref["name"]][ref["key"]]
    return env


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Path, EmbeddedNats, EmbeddedPostgres, list[dict[str, Any]]]]:
    # Outside pytest's base temp dir: the embedded PostgreSQL may run as an unprivileged account.
    work = Path(tempfile.mkdtemp(prefix="cogwheel-k8s-"))
    credentials = Credentials.ensure(work / "operator")
    nats_config = work / "nats-authorization.conf"
    nats_server: EmbeddedNats | None = None
    postgres = EmbeddedPostgres(work / "pgdata", durable=False, password=credentials.postgres_superuser_password)
    try:
        postgres.start()
        # The NATS address is known only once it runs; the authorization block does not depend on it.
        documents = _make_secrets([str(work / "operator"), "--database-url", postgres.url,
                                   "--nats-url", "nats://127.0.0.1:4222", "--nats-config", str(nats_config)])
        nats_server = EmbeddedNats(work / "nats", config=nats_config.read_text())
        nats_server.start()
        documents = _make_secrets([str(work / "operator"), "--database-url", postgres.url,
                                   "--nats-url", nats_server.url])
        yield work, nats_server, postgres, documents
    finally:
        if nats_server is not None:
            nats_server.stop()
        postgres.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_make_secrets_keeps_the_credentials_it_made(
    servers: tuple[Path, EmbeddedNats, EmbeddedPostgres, list[dict[str, Any]]],
) -> None:
    work, _, _, documents = servers
    again = _make_secrets([str(work / "operator"), "--database-url", "postgresql://x:y@elsewhere/db",
                           "--nats-url", "nats://elsewhere:4222"])
    first = {doc["metadata"]["name"]: doc["stringData"] for doc in documents}
    second = {doc["metadata"]["name"]: doc["stringData"] for doc in again}
    assert first["cogwheel-runner"] == second["cogwheel-runner"]
    assert first["cogwheel-gateway"]["web-session-key"] == second["cogwheel-gateway"]["web-session-key"]
    assert first["cogwheel-scheduler"]["nats-password"] == second["cogwheel-scheduler"]["nats-password"]


def test_after_the_setup_job_every_service_turns_ready_as_deployed(
    servers: tuple[Path, EmbeddedNats, EmbeddedPostgres, list[dict[str, Any]]],
) -> None:
    work, nats_server, _, documents = servers
    secrets = {doc["metadata"]["name"]: doc["stringData"] for doc in documents}
    manifests = _manifests()
    config = next(doc["data"] for doc in manifests if doc["kind"] == "ConfigMap")

    (job,) = [doc for doc in manifests if doc["kind"] == "Job"]
    (setup,) = job["spec"]["template"]["spec"]["containers"]
    env = {**_environment(setup, config, secrets), "PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}
    command = [sys.executable if setup["command"][0] == "python" else setup["command"][0], *setup["command"][1:]]
    done = subprocess.run(command, env=env, cwd=work, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    # Running it again (an upgrade) is harmless.
    again = subprocess.run(command, env=env, cwd=work, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr

    grpc = {"registry": free_port(), "scheduler": free_port(), "webhook_dispatcher": free_port()}
    local = {"COGWHEEL_NATS_URL": nats_server.url,
             "COGWHEEL_REGISTRY_ADDR": f"127.0.0.1:{grpc['registry']}",
             "COGWHEEL_SCHEDULER_ADDR": f"127.0.0.1:{grpc['scheduler']}",
             "COGWHEEL_WEBHOOKS_ADDR": f"127.0.0.1:{grpc['webhook_dispatcher']}"}
    processes: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    try:
        for doc in manifests:
            if doc["kind"] not in ("Deployment", "DaemonSet"):
                continue
            service = doc["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]
            spec = doc["spec"]["template"]["spec"]
            (container,) = spec["containers"]
            env = _environment(container, config, secrets) | local
            data = work / "data" / service
            data.mkdir(parents=True)
            port = free_port()
            env |= {"COGWHEEL_DATA_DIR": str(data), "PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT)}
            if service == "gateway":
                env["COGWHEEL_PORT"] = str(port)
            else:
                env["COGWHEEL_HEALTH_PORT"] = str(port)
            if service in grpc:
                env["COGWHEEL_GRPC_PORT"] = str(grpc[service])
            for mount in container.get("volumeMounts", []):  # the runner's key, as its Secret volume shows it
                volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
                if "secret" in volume:
                    folder = work / "secrets" / service
                    folder.mkdir(parents=True)
                    for item in volume["secret"]["items"]:
                        (folder / item["path"]).write_text(secrets[volume["secret"]["secretName"]][item["key"]])
                    env = {k: v.replace(mount["mountPath"], str(folder)) for k, v in env.items()}
            command = [sys.executable, *container["command"][1:]]
            log = open(work / f"{service}.log", "wb")  # noqa: SIM115 - closed with the process
            processes[service] = (subprocess.Popen(command, env=env, cwd=work, stdout=log, stderr=log), port)
        assert set(processes) == set(SERVICES)

        deadline = time.monotonic() + 150
        waiting = set(processes)
        with httpx.Client(timeout=3) as http:
            while waiting and time.monotonic() < deadline:
                for service in sorted(waiting):
                    proc, port = processes[service]
                    assert proc.poll() is None, (service, (work / f"{service}.log").read_text()[-3000:])
                    try:
                        if http.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                            waiting.discard(service)
                    except httpx.HTTPError:
                        pass
                time.sleep(0.5)
        assert not waiting, {s: (work / f"{s}.log").read_text()[-2000:] for s in waiting}
    finally:
        for proc, _ in processes.values():
            proc.terminate()
        for proc, _ in processes.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
