"""Signed file download links: Replicate's `owner`, `expiry`, `signature` form."""

import base64
import hashlib
import hmac
from urllib.parse import parse_qs, urlsplit

from services.gateway.file_links import FileLinkSigner


async def test_a_link_carries_replicates_signature_and_checks_out() -> None:
    signer = FileLinkSigner(None, "gateway", configured="k3y")  # type: ignore[arg-type]
    link = await signer.link("https://gw.example", "alice", "f1", 2_000_000_000)
    parts = urlsplit(link)
    assert parts.path == "/v1/files/f1/download"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    expected = base64.b64encode(hmac.new(b"k3y", b"alice f1 2000000000", hashlib.sha256).digest()).decode()
    assert query == {"owner": "alice", "expiry": "2000000000", "signature": expected}
    assert await signer.valid("alice", "f1", "2000000000", expected, now=1_999_999_999)
    # URL-safe base64 of the same digest is accepted too.
    assert await signer.valid("alice", "f1", "2000000000", expected.replace("+", "-").replace("/", "_"), now=0)


async def test_expired_tampered_or_malformed_links_are_refused() -> None:
    signer = FileLinkSigner(None, "gateway", configured="k3y")  # type: ignore[arg-type]
    signature = await signer.signature("alice", "f1", 100)
    assert not await signer.valid("alice", "f1", "100", signature, now=101)
    assert not await signer.valid("bob", "f1", "100", signature, now=0)
    assert not await signer.valid("alice", "f2", "100", signature, now=0)
    assert not await signer.valid("alice", "f1", "101", signature, now=0)
    assert not await signer.valid("alice", "f1", "soon", signature, now=0)
    assert not await signer.valid("alice", "f1", "100", "%%%", now=0)
