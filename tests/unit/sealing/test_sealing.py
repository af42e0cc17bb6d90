"""Sealed boxes: only the private key's holder opens them; tampering and wrong keys are caught."""

import base64

import pytest

from libs.sealing import (
    SealingError,
    generate_key_pair,
    load_private_key,
    load_public_key,
    open_sealed,
    open_sealed_json,
    private_key_text,
    public_key_text,
    seal,
    seal_json,
)


def test_round_trip_through_text_keys(tmp_path) -> None:
    private, public = generate_key_pair()
    key_file = tmp_path / "key"
    key_file.write_text(private_key_text(private) + "\n")
    sealed = seal(b"hunter2", load_public_key(public_key_text(public)))
    assert b"hunter2" not in base64.urlsafe_b64decode(sealed)
    assert open_sealed(sealed, load_private_key(key_file)) == b"hunter2"
    assert open_sealed_json(seal_json({"token": "x", "keys": ["a"]}, public), private) == {"token": "x", "keys": ["a"]}


def test_each_seal_differs() -> None:
    private, public = generate_key_pair()
    first, second = seal(b"same", public), seal(b"same", public)
    assert first != second
    assert open_sealed(first, private) == open_sealed(second, private) == b"same"


def test_another_key_cannot_open() -> None:
    _, public = generate_key_pair()
    other, _ = generate_key_pair()
    with pytest.raises(SealingError, match="another key"):
        open_sealed(seal(b"secret", public), other)


def test_tampering_is_detected() -> None:
    private, public = generate_key_pair()
    raw = bytearray(base64.urlsafe_b64decode(seal(b"secret", public)))
    raw[-1] ^= 1
    with pytest.raises(SealingError, match="authenticate"):
        open_sealed(base64.urlsafe_b64encode(bytes(raw)).decode(), private)
    with pytest.raises(SealingError):
        open_sealed("not base64!!", private)
    with pytest.raises(SealingError):
        load_public_key(base64.urlsafe_b64encode(b"short").decode())
