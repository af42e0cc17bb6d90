"""Write the Kubernetes Secrets of one installation, with the credentials `cogwheel up` would generate.

    python deploy/kubernetes/make_secrets.py CREDENTIALS_DIR \\
        --database-url postgresql://ADMIN:PASSWORD@HOST:5432/cogwheel --nats-url nats://HOST:4222 \\
        --nats-config nats-authorization.conf > deploy/kubernetes/secrets.yaml
    kubectl apply -f deploy/kubernetes/secrets.yaml

CREDENTIALS_DIR keeps what was generated (cogwheel/credentials.py: folder 0700, files 0600), so running it
again gives the same credentials; delete a file there to rotate it. What it writes:

- a Secret ``cogwheel-<service>`` per service with only that service's credentials: its NATS user and password,
  the gRPC token, its own PostgreSQL role's URL (not the runner's: it has no database), the scheduler the
  public sealing key, the runners the private one, the gateway the web session key;
- ``cogwheel-setup`` for setup-job.yaml: the administrator's database URL (migrations, then one role per
  schema), NATS's ``admin`` URL (streams, object stores and buckets) and the roles' passwords;
- with ``--nats-config``, the ``authorization`` block your NATS server needs (per-user permissions,
  libs/bus/permissions.py); include it in its configuration.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import yaml  # noqa: E402

from cogwheel.credentials import Credentials, write_private  # noqa: E402
from libs.bus.permissions import SERVICE_USERS  # noqa: E402
from libs.db.roles import role_for, url_for_role  # noqa: E402

__all__ = ["secrets_for", "main"]

WEB_SESSION_KEY = "web-session-key"


def resource_name(service: str) -> str:
    """Kubernetes names allow no underscore: ``webhook_dispatcher`` is ``cogwheel-webhook-dispatcher``."""
    return "cogwheel-" + service.replace("_", "-")


def _with_user(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _secret(name: str, namespace: str, data: dict[str, str]) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/name": "cogwheel"}},
            "stringData": data}


def secrets_for(credentials: Credentials, *, database_url: str, nats_url: str, web_session_key: str,
                namespace: str = "cogwheel") -> list[dict[str, object]]:
    """Every Secret the manifests read, from one installation's credentials."""
    documents = []
    for service in SERVICE_USERS:
        data = {"nats-user": service, "nats-password": credentials.nats_passwords[service],
                "rpc-token": credentials.rpc_token}
        password = credentials.postgres_passwords.get(service)
        if password is not None:
            data["database-url"] = url_for_role(database_url, role_for(service), password)
        if service == "scheduler":
            data["secrets-public-key"] = credentials.secrets_public_key
        if service == "runner":
            data["runner-key"] = credentials.secrets_private_key_file.read_text().strip()
        if service == "gateway":
            data[WEB_SESSION_KEY] = web_session_key
        documents.append(_secret(resource_name(service), namespace, data))
    admin, admin_password = credentials.admin_nats()
    documents.append(_secret("cogwheel-setup", namespace, {
        "database-url": database_url,
        "nats-url": _with_user(nats_url, admin, admin_password),
        "role-passwords": json.dumps(credentials.schema_passwords()),
    }))
    return documents


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("credentials_dir", type=Path, help="Where the generated credentials are kept (0700).")
    parser.add_argument("--database-url", required=True,
                        help="Your PostgreSQL database as a user that may create roles and schemas.")
    parser.add_argument("--nats-url", required=True, help="Your NATS server, without credentials.")
    parser.add_argument("--runner-hardware", action="append", default=None,
                        help="Hardware the runners serve (COGWHEEL_HARDWARE), repeatable; default cpu.")
    parser.add_argument("--nats-config", type=Path, help="Write NATS's authorization block here (0600).")
    parser.add_argument("--namespace", default="cogwheel")
    args = parser.parse_args(argv)

    credentials = Credentials.ensure(args.credentials_dir)
    session_key_file = credentials.directory / WEB_SESSION_KEY
    if not session_key_file.exists():
        write_private(session_key_file, secrets.token_urlsafe(32) + "\n")
    documents = secrets_for(credentials, database_url=args.database_url, nats_url=args.nats_url,
                            web_session_key=session_key_file.read_text().strip(), namespace=args.namespace)
    if args.nats_config is not None:
        write_private(args.nats_config, credentials.nats_config(args.runner_hardware or ["cpu"]))
    sys.stdout.write("# Generated by deploy/kubernetes/make_secrets.py: credentials, keep private.\n")
    sys.stdout.write(yaml.safe_dump_all(documents, sort_keys=False, width=200))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
