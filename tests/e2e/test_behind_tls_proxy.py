"""A deployment behind a TLS-terminating proxy: the gateway serves plain HTTP and `COGWHEEL_PUBLIC_URL` names the
proxy's HTTPS origin, on which every URL it writes lies, so the official client's file outputs are `FileOutput`s
fetched through the proxy."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import replicate
from replicate.helpers import FileOutput

from cogwheel.tls import LocalTls, ensure_local_tls
from libs.infra import free_port

PREDICTORS = Path(__file__).parents[1] / "fixtures" / "predictors"


@pytest.fixture(scope="module")
def platform_replicas() -> dict[str, int]:
    return {}


@pytest.fixture(scope="module")
def proxy_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def platform_env(proxy_port: int) -> dict[str, str]:
    return {"COGWHEEL_PUBLIC_URL": f"https://127.0.0.1:{proxy_port}"}


@pytest.fixture(scope="module")
def proxy_tls(tmp_path_factory: pytest.TempPathFactory) -> LocalTls:
    return ensure_local_tls(tmp_path_factory.mktemp("proxy"))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


@pytest.fixture(scope="module")
async def proxy(platform, proxy_port: int, proxy_tls: LocalTls) -> AsyncIterator[str]:
    """Terminates TLS on `proxy_port` and forwards the bytes to the gateway's plain HTTP port."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(proxy_tls.server_cert, proxy_tls.server_key)

    async def forward(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", platform.stack.gateway_port)
        await asyncio.gather(_pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer))

    server = await asyncio.start_server(forward, "127.0.0.1", proxy_port, ssl=context)
    try:
        yield f"https://127.0.0.1:{proxy_port}"
    finally:
        server.close()
        await server.wait_closed()


async def test_the_gateway_serves_http_and_writes_urls_on_the_public_origin(platform, proxy: str) -> None:
    assert platform.stack.base_url.startswith("http://")
    async with platform.client() as client:  # straight to the gateway, as the proxy talks to it
        created = await client.post("/v1/models/cogwheel/hello-world/predictions", json={"input": {"text": "p"}},
                                    headers={"Prefer": "wait"})
        models = (await client.get("/v1/models")).json()
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["urls"]["get"] == f"{proxy}/v1/predictions/{body['id']}"
    assert created.headers["location"] == body["urls"]["get"]
    assert all(model["url"].startswith("https://") for model in models["results"])


async def test_official_client_reads_file_outputs_through_the_proxy(platform, proxy: str, proxy_tls: LocalTls,
                                                                   monkeypatch) -> None:
    await platform.push("cogwheel", "path-output", PREDICTORS / "path_output")
    monkeypatch.setenv("REPLICATE_BASE_URL", proxy)
    monkeypatch.setenv("REPLICATE_API_TOKEN", platform.token)
    monkeypatch.setenv("SSL_CERT_FILE", str(proxy_tls.bundle))

    def run() -> tuple[type, str, bytes]:
        output = replicate.Client().run("cogwheel/path-output")
        return type(output), output.url, output.read()

    kind, url, content = await asyncio.to_thread(run)
    assert kind is FileOutput
    assert url.startswith(f"{proxy}/v1/outputs/")
    assert content == b"None"
    async with httpx.AsyncClient(verify=proxy_tls.ssl_context()) as anonymous:  # no token needed, as on Replicate
        assert (await anonymous.get(url)).content == b"None"
