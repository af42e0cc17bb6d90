"""Generated protobuf modules import under libs.pb and match the committed tree."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
MODULES = [
    "libs.pb.cogwheel.registry.v1.registry_pb2",
    "libs.pb.cogwheel.registry.v1.registry_pb2_grpc",
    "libs.pb.cogwheel.scheduler.v1.scheduler_pb2",
    "libs.pb.cogwheel.scheduler.v1.scheduler_pb2_grpc",
]


@pytest.mark.parametrize("name", MODULES)
def test_generated_module_imports(name: str) -> None:
    assert importlib.import_module(name)


def test_services_and_messages_exist() -> None:
    from libs.pb.cogwheel.registry.v1 import registry_pb2, registry_pb2_grpc
    from libs.pb.cogwheel.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc

    # Other RPCs are added at the end of the service by later features; these must stay.
    assert {m.name for m in registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].methods} >= {
        "EnsureAccount", "CreateToken", "AuthenticateToken", "CreateModel",
        "GetModel", "CreateVersion", "GetVersion", "ListVersions",
        "UpdateModel", "DeleteModel", "ListModels", "DeleteVersion",
        "CreateFile", "GetFile", "ListFiles", "DeleteFile",
        "PutCollection", "GetCollection", "ListCollections",
        "GetAccount", "ListAccounts", "AddMember", "RemoveMember",
        "ListTokens", "DisableToken", "EnableToken", "RevokeToken",
    }  # fmt: skip
    assert {m.name for m in scheduler_pb2.DESCRIPTOR.services_by_name["SchedulerService"].methods} == {
        "CreatePrediction", "GetPrediction", "CancelPrediction", "ListPredictionEvents",
    }  # fmt: skip
    assert registry_pb2_grpc.RegistryServiceStub and scheduler_pb2_grpc.SchedulerServiceServicer
    prediction = scheduler_pb2.Prediction(id="p1")
    assert not prediction.HasField("predict_time")
    prediction.predict_time = 0.0
    assert prediction.HasField("predict_time")


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _generate(out: Path) -> None:
    subprocess.run([sys.executable, str(REPO / "scripts" / "gen_proto.py"), "--out", str(out)], check=True)


def test_gen_proto_is_deterministic_and_matches_committed(tmp_path: Path) -> None:
    _generate(tmp_path / "a")
    _generate(tmp_path / "b")
    first = _tree(tmp_path / "a")
    assert first == _tree(tmp_path / "b")
    committed = {k: v for k, v in _tree(REPO / "libs" / "pb").items() if "__pycache__" not in k}
    assert first == committed, "libs/pb is stale: run `make proto`"
