"""The shared address guard: every literal, redirect and credential form of reaching the platform's own network
through a file-input URL is refused, and the local server behind it is never hit."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from libs.netguard import DestinationRefused, check_url, is_allowed, is_public, parse_networks
from services.runner.inputs import FileInputLimits, FileInputResolver, InputError


class _Server:
    def __init__(self, host: str, redirect_to: str | None = None) -> None:
        self.hits: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                outer.hits.append(self.path)
                if outer.redirect_to is not None:
                    self.send_response(302)
                    self.send_header("Location", outer.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = b"internal secret"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.redirect_to = redirect_to
        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def internal() -> Iterator[_Server]:
    """Stands for the platform's own ports: nothing may reach it."""
    server = _Server("127.0.0.1")
    yield server
    server.close()


@pytest.fixture
def relay() -> Iterator[_Server]:
    """A server the test allows (127.0.0.2 stands in for a public host) that redirects elsewhere."""
    server = _Server("127.0.0.2")
    yield server
    server.close()


def _resolver(allowed: str = "") -> FileInputResolver:
    return FileInputResolver(None, FileInputLimits(max_bytes=1024, timeout=5, allowed_networks=parse_networks(allowed)))


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "localhost", "2130706433", "0x7f000001", "0177.0.0.1", "127.1", "[::ffff:127.0.0.1]", "[::1]",
     "[::ffff:7f00:1]", "0.0.0.0"],
)
async def test_loopback_literals_are_refused_and_never_reached(internal: _Server, host: str, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="refused"):
        await _resolver().resolve({"image": f"http://{host}:{internal.port}/healthz"}, ["image"], account="a",
                                  workdir=tmp_path)
    assert internal.hits == []


async def test_a_redirect_to_loopback_is_refused(internal: _Server, relay: _Server, tmp_path: Path) -> None:
    relay.redirect_to = f"http://127.0.0.1:{internal.port}/healthz"
    resolver = _resolver("127.0.0.2/32")
    with pytest.raises(InputError, match="refused: 127.0.0.1 resolves to 127.0.0.1"):
        await resolver.resolve({"image": f"http://127.0.0.2:{relay.port}/x"}, ["image"], account="a", workdir=tmp_path)
    assert relay.hits == ["/x"] and internal.hits == []


async def test_redirects_are_bounded_and_an_allowed_one_is_followed(relay: _Server, tmp_path: Path) -> None:
    resolver = _resolver("127.0.0.2/32")
    relay.redirect_to = "/loop"
    with pytest.raises(InputError, match="more than 5 redirects"):
        await resolver.resolve({"image": f"http://127.0.0.2:{relay.port}/x"}, ["image"], account="a", workdir=tmp_path)
    target = _Server("127.0.0.2")
    try:
        relay.redirect_to = f"http://127.0.0.2:{target.port}/file.txt"
        resolved = await resolver.resolve({"image": f"http://127.0.0.2:{relay.port}/y"}, ["image"], account="a",
                                          workdir=tmp_path)
        assert Path(resolved["image"]).read_bytes() == b"internal secret"
        assert target.hits == ["/file.txt"]
    finally:
        target.close()


async def test_credentials_in_urls_are_refused(relay: _Server, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"credentials \(user:password@\) are not accepted"):
        await _resolver("127.0.0.2/32").resolve({"image": f"http://user:pass@127.0.0.2:{relay.port}/x"}, ["image"],
                                                account="a", workdir=tmp_path)
    assert relay.hits == []


async def test_a_redirect_to_a_url_with_credentials_is_refused(relay: _Server, tmp_path: Path) -> None:
    target = _Server("127.0.0.2")
    try:
        relay.redirect_to = f"http://user:pass@127.0.0.2:{target.port}/"
        with pytest.raises(InputError, match="credentials"):
            await _resolver("127.0.0.2/32").resolve({"image": f"http://127.0.0.2:{relay.port}/"}, ["image"],
                                                    account="a", workdir=tmp_path)
        assert target.hits == []
    finally:
        target.close()


def test_other_schemes_are_refused() -> None:
    for url in ("file:///etc/passwd", "gopher://x/", "ftp://example.com/"):
        with pytest.raises(DestinationRefused):
            check_url(url)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("240.0.0.1", False),
        ("::", False),
        ("::1", False),
        ("fe80::1", False),
        ("fec0::1", False),
        ("fc00::1", False),
        ("fd12:3456::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:8.8.8.8", True),
        ("::7f00:1", False),  # IPv4-compatible
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("64:ff9b::808:808", True),  # NAT64 of 8.8.8.8
        ("64:ff9b:1::808:808", False),  # local-use NAT64
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("2002:a00:1::", False),  # 6to4 of 10.0.0.1
        ("2002:808:808::", True),  # 6to4 of 8.8.8.8
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),  # Teredo, client 127.0.0.1
    ],
)
def test_address_classes(address: str, public: bool) -> None:
    assert is_public(address) is public
    assert is_allowed(address) is public


def test_allowed_networks_open_only_themselves() -> None:
    loopback = parse_networks("127.0.0.0/8, ::1/128")
    assert is_allowed("127.0.0.1", loopback) and is_allowed("::1", loopback)
    assert is_allowed("::ffff:127.0.0.1", loopback)
    assert not is_allowed("10.0.0.1", loopback) and not is_allowed("64:ff9b::7f00:1", loopback)
