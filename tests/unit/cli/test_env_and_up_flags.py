"""`cogwheel env` exports what the clients need for the running installation; `cogwheel up --http` turns HTTPS off."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import cogwheel.up
from cogwheel.cli import app
from cogwheel.state import State


def test_env_exports_the_origin_token_and_trust_store(tmp_path: Path) -> None:
    State(base_url="https://127.0.0.1:8000", ca_bundle="/data/tls/ca bundle.pem", token="r8_tok",
          supervisor_pid=os.getpid()).save(tmp_path)
    result = CliRunner().invoke(app, ["env"], env={"COGWHEEL_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "export REPLICATE_BASE_URL=https://127.0.0.1:8000",  # the origin: the Python client adds /v1 itself
        "export REPLICATE_API_TOKEN=r8_tok",
        "export SSL_CERT_FILE='/data/tls/ca bundle.pem'",
        "export NODE_EXTRA_CA_CERTS='/data/tls/ca bundle.pem'",
        "export CURL_CA_BUNDLE='/data/tls/ca bundle.pem'",
    ]


def test_env_over_plain_http_leaves_the_trust_store_alone(tmp_path: Path) -> None:
    State(base_url="http://127.0.0.1:8000", token="r8_tok", supervisor_pid=os.getpid()).save(tmp_path)
    result = CliRunner().invoke(app, ["env"], env={"COGWHEEL_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["export REPLICATE_BASE_URL=http://127.0.0.1:8000",
                                          "export REPLICATE_API_TOKEN=r8_tok"]


def test_env_without_a_running_installation_says_so(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["env"], env={"COGWHEEL_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 1
    assert "not running" in result.output


@pytest.mark.parametrize(("args", "http"), [([], False), (["--http"], True)])
def test_up_serves_https_unless_asked_for_http(args: list[str], http: bool, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    async def fake_run_up(data_dir: Path, port: int, replicas: dict[str, int], *, http: bool) -> int:
        seen["http"] = http
        return 0

    monkeypatch.setattr(cogwheel.up, "run_up", fake_run_up)
    result = CliRunner().invoke(app, ["up", *args], env={"COGWHEEL_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert seen == {"http": http}
