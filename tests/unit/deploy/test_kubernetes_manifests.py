"""deploy/kubernetes/: every docker-compose service has a workload that probes health where its settings serve it,
sets only variables the services read, reads only Secrets that make_secrets.py writes, and the runner's pods
reach nothing of the platform but NATS."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import ipaddress
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from cogwheel.credentials import Credentials
from cogwheel.stack import SERVICES
from libs.hardware.catalog import CATALOG_ENV
from libs.rpc.auth import TOKEN_ENV
from libs.sandbox.bwrap import SandboxSettings
from libs.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[3]
KUBERNETES = ROOT / "deploy" / "kubernetes"
COMPOSE = ROOT / "docker-compose.yml"
EXAMPLE_SECRETS = KUBERNETES / "secrets.example.yaml"
WORKLOAD_KINDS = ("Deployment", "DaemonSet")
# The services that run model code (runner workers, the gateway's push inspection) in the sandbox.
SANDBOXED = {"gateway", "runner"}
PLATFORM_PORTS = {5432, 8000, 8081, 50051, 50052, 50053}
PRIVATE = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
                                             "127.0.0.0/8", "100.64.0.0/10")]


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _manifests() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    return [doc for name in kustomization["resources"] for doc in _documents(KUBERNETES / name)]


def _of_kind(*kinds: str) -> list[dict[str, Any]]:
    return [doc for doc in _manifests() if doc["kind"] in kinds]


def _component(doc: dict[str, Any]) -> str:
    return str(doc["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"])


def _workloads() -> dict[str, dict[str, Any]]:
    """Workloads by the docker-compose service they run."""
    return {_component(doc): doc for doc in _of_kind(*WORKLOAD_KINDS)}


def _config_maps() -> dict[str, dict[str, str]]:
    return {doc["metadata"]["name"]: doc["data"] for doc in _of_kind("ConfigMap")}


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def _environment(container: dict[str, Any]) -> dict[str, str | None]:
    """What the container's process gets: ConfigMap values, plain values, and None for a Secret's."""
    config_maps = _config_maps()
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        env.update(config_maps[source["configMapRef"]["name"]])
    for entry in container.get("env", []):
        env[entry["name"]] = entry.get("value")
    return env


def _settings_class(service: str) -> type[ServiceSettings]:
    module = importlib.import_module(f"services.{service}.settings")
    found = [value for value in vars(module).values()
             if isinstance(value, type) and issubclass(value, ServiceSettings) and value.__module__ == module.__name__
             and value.model_fields["service_name"].default == service and "Offline" not in value.__name__]
    assert len(found) == 1, (service, found)
    return found[0]


def _settings_classes() -> Iterator[type[BaseSettings]]:
    yield ServiceSettings
    yield SandboxSettings
    for service in SERVICES:
        module = importlib.import_module(f"services.{service}.settings")
        yield from (value for value in vars(module).values()
                    if isinstance(value, type) and issubclass(value, BaseSettings))


def _variables_read() -> set[str]:
    """Every COGWHEEL_* variable a settings class reads, and the few read directly from the environment."""
    names = {TOKEN_ENV, CATALOG_ENV}
    for cls in _settings_classes():
        prefix = str(cls.model_config.get("env_prefix", ""))
        for field_name, field in cls.model_fields.items():
            alias = field.validation_alias
            names.add(alias.upper() if isinstance(alias, str) else (prefix + field_name).upper())
    return names


def _served_settings(service: str, container: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> ServiceSettings:
    """The service's own settings as its container's environment makes them (Secrets given dummy values)."""
    import os

    for name in list(os.environ):
        if name.startswith("COGWHEEL_"):
            monkeypatch.delenv(name)
    for name, value in _environment(container).items():
        monkeypatch.setenv(name, value if value is not None else "secret://placeholder")
    return _settings_class(service)()


def _make_secrets() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_secrets", KUBERNETES / "make_secrets.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_compose_service_has_a_workload_running_its_command() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())["services"]
    workloads = _workloads()
    assert set(SERVICES) <= set(compose)
    assert set(workloads) == set(SERVICES)
    for service in SERVICES:
        (container,) = workloads[service]["spec"]["template"]["spec"]["containers"]
        assert container["command"] == compose[service]["command"], service
        grpc_port = compose[service].get("environment", {}).get("COGWHEEL_GRPC_PORT")
        if grpc_port is not None:
            assert _environment(container)["COGWHEEL_GRPC_PORT"] == grpc_port, service


def test_the_runner_is_one_pod_per_node() -> None:
    assert _workloads()["runner"]["kind"] == "DaemonSet"


def test_probes_ask_healthz_and_readyz_where_the_settings_serve_them(monkeypatch: pytest.MonkeyPatch) -> None:
    for service, workload in _workloads().items():
        (container,) = workload["spec"]["template"]["spec"]["containers"]
        settings = _served_settings(service, container, monkeypatch)
        if service == "gateway":  # its HTTP server answers /healthz and /readyz
            port, host = settings.port, settings.host  # type: ignore[attr-defined]
        else:
            port, host = settings.health_port, settings.health_host
        assert port, service
        assert host == "0.0.0.0", service  # the kubelet probes the pod's address
        probes = {kind: container[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe", "startupProbe")
                  if kind in container}
        assert {"livenessProbe", "readinessProbe"} <= set(probes), service
        for kind, probe in probes.items():
            assert probe["port"] == port, (service, kind)
            assert probe["path"] == ("/readyz" if kind == "readinessProbe" else "/healthz"), (service, kind)
        assert port in {p["containerPort"] for p in container["ports"]}, service


def test_grpc_services_are_reachable_where_clients_are_told(monkeypatch: pytest.MonkeyPatch) -> None:
    services = {doc["metadata"]["name"]: doc for doc in _of_kind("Service")}
    workloads = _workloads()
    (gateway,) = workloads["gateway"]["spec"]["template"]["spec"]["containers"]
    env = _environment(gateway)
    for service, variable in (("registry", "COGWHEEL_REGISTRY_ADDR"), ("scheduler", "COGWHEEL_SCHEDULER_ADDR"),
                              ("webhook_dispatcher", "COGWHEEL_WEBHOOKS_ADDR")):
        host, port = str(env[variable]).rsplit(":", 1)
        (container,) = workloads[service]["spec"]["template"]["spec"]["containers"]
        assert _served_settings(service, container, monkeypatch).grpc_port == int(port)  # type: ignore[attr-defined]
        selector = services[host]["spec"]["selector"]
        assert selector["app.kubernetes.io/component"] == service
        assert int(port) in {p["port"] for p in services[host]["spec"]["ports"]}
    assert "gateway" in services


def test_every_cogwheel_variable_set_is_one_a_service_reads() -> None:
    read = _variables_read()
    set_here = {name for data in _config_maps().values() for name in data}
    for doc in _of_kind(*WORKLOAD_KINDS, "Job"):
        for container in _containers(doc):
            set_here |= {entry["name"] for entry in container.get("env", [])}
    cogwheel = {name for name in set_here if name.startswith("COGWHEEL_")}
    assert cogwheel
    assert cogwheel - read == set()


def test_secrets_read_are_those_make_secrets_writes(tmp_path: Path) -> None:
    wanted: set[tuple[str, str]] = set()
    for doc in _of_kind(*WORKLOAD_KINDS, "Job"):
        spec = doc["spec"]["template"]["spec"]
        for container in _containers(doc):
            for entry in container.get("env", []):
                if "valueFrom" in entry and "secretKeyRef" in entry["valueFrom"]:
                    ref = entry["valueFrom"]["secretKeyRef"]
                    wanted.add((ref["name"], ref["key"]))
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                wanted |= {(volume["secret"]["secretName"], item["key"]) for item in volume["secret"]["items"]}
    example = {(doc["metadata"]["name"], key) for doc in _documents(EXAMPLE_SECRETS) for key in doc["stringData"]}
    generated = _make_secrets().secrets_for(Credentials.ensure(tmp_path), database_url="postgresql://a:b@db:5432/c",
                                            nats_url="nats://nats:4222", web_session_key="k")
    made = {(doc["metadata"]["name"], key) for doc in generated for key in doc["stringData"]}
    assert wanted <= made
    assert example == made
    assert ("cogwheel-runner", "database-url") not in made  # the runner has no database at all
    runner_secret = next(doc for doc in generated if doc["metadata"]["name"] == "cogwheel-runner")
    assert "runner-key" in runner_secret["stringData"]
    # Only the runners hold the private key, only the scheduler the public one.
    for doc in generated:
        keys = set(doc["stringData"])
        assert ("runner-key" in keys) == (doc["metadata"]["name"] == "cogwheel-runner")
        assert ("secrets-public-key" in keys) == (doc["metadata"]["name"] == "cogwheel-scheduler")


def test_only_the_services_that_run_model_code_run_as_root() -> None:
    for service, workload in _workloads().items():
        spec = workload["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        security = container["securityContext"]
        if service in SANDBOXED:
            assert security.get("privileged") is True, service  # bubblewrap's namespaces, /proc and cgroups
        else:
            assert spec["securityContext"]["runAsNonRoot"] is True, service
            assert spec["securityContext"]["runAsUser"] != 0, service
            assert security["allowPrivilegeEscalation"] is False, service
            assert security["capabilities"]["drop"] == ["ALL"], service
        assert container["resources"]["requests"] and container["resources"]["limits"]["memory"], service


def test_the_setup_job_runs_code_that_exists() -> None:
    (job,) = _of_kind("Job")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"][:2] == ["python", "-c"]
    tree = ast.parse(container["command"][2])
    imported = [(node.module, alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                for alias in node.names]
    assert imported
    for module, name in imported:
        assert hasattr(importlib.import_module(str(module)), name), (module, name)


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def _policies_for(service: str) -> list[dict[str, Any]]:
    labels = _workloads()[service]["spec"]["template"]["metadata"]["labels"]
    return _policies_selecting(labels)


def _policies_selecting(labels: dict[str, str]) -> list[dict[str, Any]]:
    return [doc for doc in _of_kind("NetworkPolicy") if _selects(doc["spec"]["podSelector"], labels)]


def test_what_uses_nats_or_postgresql_may_reach_it() -> None:
    for doc in _of_kind(*WORKLOAD_KINDS, "Job"):
        labels = doc["spec"]["template"]["metadata"]["labels"]
        ports = {p["port"] for policy in _policies_selecting(labels) for rule in policy["spec"].get("egress", [])
                 for p in rule.get("ports", [])}
        (container,) = doc["spec"]["template"]["spec"]["containers"]
        env = _environment(container)
        assert ("COGWHEEL_NATS_URL" in env) == (4222 in ports), labels
        assert ("COGWHEEL_DATABASE_URL" in env) == (5432 in ports), labels


def test_everything_is_denied_unless_a_policy_allows_it() -> None:
    policies = _of_kind("NetworkPolicy")
    assert any(doc["spec"]["podSelector"] == {} and set(doc["spec"]["policyTypes"]) == {"Ingress", "Egress"}
               and not doc["spec"].get("ingress") and not doc["spec"].get("egress") for doc in policies)


def test_runner_pods_reach_nats_and_public_addresses_only() -> None:
    policies = _policies_for("runner")
    assert any(doc["metadata"]["name"] == "runner" for doc in policies)
    assert not [rule for doc in policies for rule in doc["spec"].get("ingress", [])]
    egress = [rule for doc in policies for rule in doc["spec"].get("egress", [])]
    assert egress
    for rule in egress:
        ports = {p["port"] for p in rule["ports"]}  # every rule names its ports
        assert not ports & PLATFORM_PORTS, rule
        if ports & {80, 443}:
            for peer in rule["to"]:  # public addresses only: never a pod, the node or the metadata service
                block = peer["ipBlock"]
                excepted = [ipaddress.ip_network(n) for n in block.get("except", [])]
                if ipaddress.ip_network(block["cidr"]).version == 4:
                    assert all(any(p.subnet_of(e) for e in excepted) for p in PRIVATE), block  # type: ignore[arg-type]
    assert any({p["port"] for p in rule["ports"]} == {4222} for rule in egress)


def test_grpc_ports_admit_only_their_callers() -> None:
    callers = {"registry": {"gateway", "scheduler"}, "scheduler": {"gateway"}, "webhook_dispatcher": {"gateway"}}
    workloads = _workloads()
    for service, allowed in callers.items():
        ingress = [rule for doc in _policies_for(service) for rule in doc["spec"].get("ingress", [])]
        assert ingress, service
        for rule in ingress:
            peers = rule["from"]  # never open to everyone
            admitted = {caller for caller, doc in workloads.items()
                        if any(_selects(peer["podSelector"], doc["spec"]["template"]["metadata"]["labels"])
                               for peer in peers)}
            assert admitted == allowed, service
