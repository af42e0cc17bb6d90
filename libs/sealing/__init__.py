"""Sealed boxes for secret prediction inputs: anyone with the public key seals, only runners can open.

Construction (an ECIES "sealed box"): a fresh X25519 key pair per message; the shared secret with the
recipient's key, through HKDF-SHA256 (salt = ephemeral public key || recipient public key), gives a
ChaCha20-Poly1305 key. The sealed form is ``version byte || ephemeral public key (32) || ciphertext+tag``
(nonce all zero: each key encrypts exactly one message). The recipient key's 8-byte id rides along in the
associated data so that a box sealed for another key fails to open with a clear error.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "SEALED_INPUT",
    "SealingError",
    "generate_key_pair",
    "load_private_key",
    "load_public_key",
    "open_sealed",
    "open_sealed_json",
    "private_key_text",
    "public_key_text",
    "seal",
    "seal_json",
]

# The job field holding a prediction's secret input values, sealed as one JSON object.
SEALED_INPUT = "sealed_input"
_VERSION = b"\x01"
_INFO = b"cogwheel sealed input v1"
_NONCE = bytes(12)


class SealingError(ValueError):
    """A key or a sealed value is malformed, or the value was sealed for another key."""


def generate_key_pair() -> tuple[X25519PrivateKey, X25519PublicKey]:
    private = X25519PrivateKey.generate()
    return private, private.public_key()


def _raw_public(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_text(key: X25519PublicKey) -> str:
    """The public key as URL-safe base64 (fits an environment variable)."""
    return base64.urlsafe_b64encode(_raw_public(key)).decode()


def private_key_text(key: X25519PrivateKey) -> str:
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    return base64.urlsafe_b64encode(raw).decode()


def _decode32(text: str, what: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip().encode())
    except ValueError as exc:
        raise SealingError(f"{what} is not base64") from exc
    if len(raw) != 32:
        raise SealingError(f"{what} must be 32 bytes, got {len(raw)}")
    return raw


def load_public_key(text: str) -> X25519PublicKey:
    return X25519PublicKey.from_public_bytes(_decode32(text, "public key"))


def load_private_key(source: str | Path) -> X25519PrivateKey:
    """A private key from its base64 text, or from the file a ``Path`` names."""
    text = Path(source).read_text() if isinstance(source, Path) else source
    return X25519PrivateKey.from_private_bytes(_decode32(text, "private key"))


def _key_id(recipient: bytes) -> bytes:
    return hashlib.sha256(recipient).digest()[:8]


def _cipher(shared: bytes, ephemeral: bytes, recipient: bytes) -> ChaCha20Poly1305:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient, info=_INFO).derive(shared)
    return ChaCha20Poly1305(key)


def seal(plaintext: bytes, recipient: X25519PublicKey) -> str:
    """``plaintext`` sealed for the holder of ``recipient``'s private key, as URL-safe base64 text."""
    ephemeral_private = X25519PrivateKey.generate()
    ephemeral = _raw_public(ephemeral_private.public_key())
    target = _raw_public(recipient)
    cipher = _cipher(ephemeral_private.exchange(recipient), ephemeral, target)
    body = cipher.encrypt(_NONCE, plaintext, _VERSION + _key_id(target))
    return base64.urlsafe_b64encode(_VERSION + _key_id(target) + ephemeral + body).decode()


def open_sealed(sealed: str, private: X25519PrivateKey) -> bytes:
    """The plaintext of a value made by ``seal`` for ``private``'s public key."""
    try:
        raw = base64.urlsafe_b64decode(sealed.encode())
    except ValueError as exc:
        raise SealingError("sealed value is not base64") from exc
    if len(raw) < 1 + 8 + 32 + 16 or raw[:1] != _VERSION:
        raise SealingError("sealed value is malformed")
    key_id, ephemeral, body = raw[1:9], raw[9:41], raw[41:]
    target = _raw_public(private.public_key())
    if key_id != _key_id(target):
        raise SealingError("sealed for another key (was the runners' key pair regenerated?)")
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral))
        return _cipher(shared, ephemeral, target).decrypt(_NONCE, body, _VERSION + key_id)
    except (InvalidTag, ValueError) as exc:
        raise SealingError("sealed value does not authenticate") from exc



def seal_json(values: dict[str, Any], recipient: X25519PublicKey) -> str:
    return seal(json.dumps(values, separators=(",", ":")).encode(), recipient)


def open_sealed_json(sealed: str, private: X25519PrivateKey) -> dict[str, Any]:
    values = json.loads(open_sealed(sealed, private))
    if not isinstance(values, dict):
        raise SealingError("sealed value is not a JSON object")
    return values
