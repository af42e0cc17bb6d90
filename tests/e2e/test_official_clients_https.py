"""The official clients over HTTPS from a `cogwheel up`-style stack: file outputs arrive as `FileOutput`s.

Both clients wrap an output string in a `FileOutput` only when it starts with `https:` or `data:`; the stack
serves HTTPS with a certificate of its local CA, and the clients trust it through `SSL_CERT_FILE` /
`NODE_EXTRA_CA_CERTS` exactly as `cogwheel env` exports them, with no client setting changed.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import httpx
import pytest
import replicate
from replicate.helpers import FileOutput

PREDICTORS = Path(__file__).parents[1] / "fixtures" / "predictors"


@pytest.fixture(scope="module")
def platform_tls() -> bool:
    return True


@pytest.fixture(scope="module")
def platform_replicas() -> dict[str, int]:
    return {}


@pytest.fixture(scope="module")
async def file_models(platform) -> dict[str, str]:
    await platform.push("cogwheel", "file-list", PREDICTORS / "file_list")
    await platform.push("cogwheel", "path-output", PREDICTORS / "path_output")
    return {"list": "cogwheel/file-list", "path": "cogwheel/path-output"}


def _client_env(platform) -> dict[str, str]:
    return {"REPLICATE_BASE_URL": platform.stack.base_url, "REPLICATE_API_TOKEN": platform.token,
            **platform.stack.tls.client_env()}


async def test_gateway_serves_https_with_the_local_ca(platform) -> None:
    assert platform.stack.base_url.startswith("https://127.0.0.1:")
    with pytest.raises(httpx.ConnectError):  # an untrusting client refuses the certificate
        async with httpx.AsyncClient(verify=True) as client:
            await client.get(f"{platform.stack.base_url}/healthz")
    async with platform.client() as client:
        models = (await client.get("/v1/models")).json()
    assert models["results"], models


async def test_python_client_reads_file_outputs(platform, file_models, monkeypatch) -> None:
    for name, value in _client_env(platform).items():
        monkeypatch.setenv(name, value)

    def run() -> dict[str, object]:
        # As Replicate's docs write it: the default client, configured by the environment only.
        client = replicate.Client()
        output = client.run(file_models["list"], input={"name": "report"})
        single = client.run(file_models["path"])
        return {
            "kinds": [type(item) for item in output],
            "urls": [item.url for item in output],
            "first": output[0].read(),
            "second": b"".join(output[1]),  # iteration streams the bytes
            "single_kind": type(single),
            "single": single.read(),
        }

    seen = await asyncio.to_thread(run)
    assert seen["kinds"] == [FileOutput, FileOutput]
    assert all(url.startswith(f"{platform.stack.base_url}/v1/outputs/") for url in seen["urls"])  # type: ignore[union-attr]
    assert seen["first"] == b"plain text"
    assert json.loads(seen["second"]) == {"name": "report"}  # type: ignore[arg-type]
    assert seen["single_kind"] is FileOutput
    assert seen["single"] == b"None"


async def test_python_async_client_reads_file_outputs(platform, file_models, monkeypatch) -> None:
    for name, value in _client_env(platform).items():
        monkeypatch.setenv(name, value)
    output = await replicate.Client().async_run(file_models["list"], input={"name": "async"})
    assert await output[0].aread() == b"plain text"
    assert json.loads(b"".join([chunk async for chunk in output[1]])) == {"name": "async"}


async def test_js_client_reads_file_outputs(platform, file_models, js_client: Path, node) -> None:
    env = {**os.environ, **_client_env(platform), "COGWHEEL_API_URL": f"{platform.stack.base_url}/v1",
           "COGWHEEL_FILE_LIST_MODEL": file_models["list"], "COGWHEEL_PATH_MODEL": file_models["path"]}
    code, out, err = await node(str(js_client.parent / "file_outputs.mjs"), env=env, timeout=120)
    assert code == 0, f"node exited {code}:\n{out}\n{err}"
    report = json.loads(out.strip().splitlines()[-1])
    assert report["list_kinds"] == ["FileOutput", "FileOutput"]
    assert all(url.startswith(f"{platform.stack.base_url}/v1/outputs/") for url in report["list_urls"])
    assert report["first_text"] == "plain text"
    assert report["second_json"] == {"name": "report"}
    assert report["single_kind"] == "FileOutput"
    assert report["single_text"] == "None"
    assert "file-list" in report["search_names"]
