"""A local certificate authority for ``cogwheel up``: the gateway speaks HTTPS on loopback by default.

Replicate's official clients only turn an output URL into a ``FileOutput`` when it starts with ``https:``
(or ``data:``), so a local installation serves HTTPS with a certificate signed by its own CA. Clients trust
that CA through the bundle written beside it (the usual public roots from ``certifi`` plus the local CA),
which ``cogwheel env`` exports as ``SSL_CERT_FILE``, ``NODE_EXTRA_CA_CERTS`` and ``CURL_CA_BUNDLE``.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["LocalTls", "ensure_local_tls"]

CA_DAYS = 3650
# Leaf certificates over 398 days are refused by some clients (Apple's, Chrome's); renewed before expiry.
SERVER_DAYS = 397
RENEW_BEFORE = datetime.timedelta(days=30)
SERVER_NAMES = ("localhost",)
SERVER_ADDRESSES = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class LocalTls:
    """Paths of the local CA and the gateway's certificate, all under ``<data dir>/tls``."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca-key.pem"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.directory / "server-key.pem"

    @property
    def bundle(self) -> Path:
        """Public roots plus the local CA: what clients use as their trust store."""
        return self.directory / "ca-bundle.pem"

    def client_env(self) -> dict[str, str]:
        """Environment that makes Python (httpx, requests), Node and curl trust the gateway."""
        bundle = str(self.bundle)
        return {"SSL_CERT_FILE": bundle, "NODE_EXTRA_CA_CERTS": bundle, "CURL_CA_BUNDLE": bundle,
                "REQUESTS_CA_BUNDLE": bundle}

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting the bundle (public roots and the local CA)."""
        return ssl.create_default_context(cafile=str(self.bundle))


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _create_ca(tls: LocalTls) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Cogwheel local"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "Cogwheel local CA")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(tls.ca_key, _key_pem(key))
    _write_public(tls.ca_cert, cert.public_bytes(serialization.Encoding.PEM))


def _create_server(tls: LocalTls) -> None:
    ca_key = serialization.load_pem_private_key(tls.ca_key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_cert = x509.load_pem_x509_certificate(tls.ca_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in SERVER_NAMES]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in SERVER_ADDRESSES]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False)  # type: ignore[arg-type]
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(tls.server_key, _key_pem(key))
    _write_public(tls.server_cert, cert.public_bytes(serialization.Encoding.PEM))


def _valid_for_a_while(path: Path, margin: datetime.timedelta) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return False
    return cert.not_valid_after_utc - margin > _now()


def ensure_local_tls(data_dir: Path) -> LocalTls:
    """Create (or reuse, renewing what is about to expire) the CA, the server certificate and the bundle."""
    tls = LocalTls(Path(data_dir).resolve() / "tls")
    tls.directory.mkdir(parents=True, exist_ok=True)
    os.chmod(tls.directory, 0o700)
    new_ca = not (tls.ca_key.is_file() and _valid_for_a_while(tls.ca_cert, RENEW_BEFORE))
    if new_ca:
        _create_ca(tls)
    if new_ca or not (tls.server_key.is_file() and _valid_for_a_while(tls.server_cert, RENEW_BEFORE)):
        _create_server(tls)
    # Rewritten on every start so that the public roots follow the installed certifi.
    bundle = Path(certifi.where()).read_bytes().rstrip(b"\n") + b"\n\n# Cogwheel local CA\n" + tls.ca_cert.read_bytes()
    _write_public(tls.bundle, bundle)
    return tls
