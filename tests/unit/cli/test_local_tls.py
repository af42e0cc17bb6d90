"""The local CA of `cogwheel up`: a server certificate for loopback that clients trusting the bundle accept,
and a bundle that keeps the usual public roots (so other HTTPS calls in a shell with `cogwheel env` still work)."""

from __future__ import annotations

import asyncio
import ssl
import stat
from pathlib import Path

import certifi
import pytest
from cryptography import x509

from cogwheel.tls import LocalTls, ensure_local_tls


async def _handshake(tls_dir: Path, server_hostname: str, cafile: str) -> str:
    tls = LocalTls(tls_dir)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tls.server_cert, tls.server_key)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ssl.create_default_context(cafile=cafile), server_hostname=server_hostname)
        data = await reader.read()
        writer.close()
        return data.decode()
    finally:
        server.close()
        await server.wait_closed()


async def test_clients_trusting_the_bundle_accept_the_gateway_on_loopback(tmp_path: Path) -> None:
    tls = ensure_local_tls(tmp_path)
    for name in ("127.0.0.1", "localhost"):
        assert await _handshake(tls.directory, name, str(tls.bundle)) == "ok"
    # A client with only the public roots refuses it: the trust comes from the local CA.
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(tls.directory, "127.0.0.1", certifi.where())


def test_the_bundle_is_the_public_roots_plus_the_local_ca_and_keys_are_private(tmp_path: Path) -> None:
    tls = ensure_local_tls(tmp_path)
    bundle = tls.bundle.read_bytes()
    assert bundle.startswith(Path(certifi.where()).read_bytes().rstrip(b"\n"))
    assert bundle.rstrip(b"\n").endswith(tls.ca_cert.read_bytes().rstrip(b"\n"))
    for key in (tls.ca_key, tls.server_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert set(tls.client_env().values()) == {str(tls.bundle)}
    assert {"SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "CURL_CA_BUNDLE"} <= set(tls.client_env())


def test_a_restart_keeps_the_ca_clients_already_trust(tmp_path: Path) -> None:
    first = ensure_local_tls(tmp_path)
    ca, server = first.ca_cert.read_bytes(), first.server_cert.read_bytes()
    again = ensure_local_tls(tmp_path)
    assert (again.ca_cert.read_bytes(), again.server_cert.read_bytes()) == (ca, server)
    cert = x509.load_pem_x509_certificate(server)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
