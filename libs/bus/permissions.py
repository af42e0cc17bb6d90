"""What each service's NATS user may publish and subscribe to, for the server's authorization config.

The runner hosts model processes, so its user is held tightly: it pulls jobs only through its own durable
consumer, publishes only its reports, reads the versions and files object stores, writes outputs and its
heartbeat, and creates nothing. The other services never host foreign code: they may use the JetStream
API, but each publishes only its own events and core subjects. ``admin`` (migrations, seeding, pushes)
may do anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from libs.bus.subjects import (
    FILES_BUCKET,
    OUTPUTS_BUCKET,
    RUNNER_CANCEL,
    RUNNER_JOBS,
    RUNNER_NODE_COMMANDS,
    RUNNERS_BUCKET,
    SPILL_BUCKET,
    STREAM_SPILL_BUCKET,
    VERSION_PACKAGES_BUCKET,
    event_subject,
    prediction_stream,
    runner_durable,
)

__all__ = ["ADMIN_USER", "SERVICE_USERS", "Permissions", "authorization_config", "permissions_for"]

ADMIN_USER = "admin"
SERVICE_USERS = ("gateway", "registry", "scheduler", "runner", "webhook_dispatcher", "billing")
_INBOX = "_INBOX_{user}.>"


@dataclass(frozen=True)
class Permissions:
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    deny_subscribe: tuple[str, ...] = field(default=())


def _read_object_store(bucket: str) -> list[str]:
    stream = f"OBJ_{bucket}"
    return [
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.STREAM.MSG.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}.>",
        # Reading an object is an ordered (ephemeral) consumer of its chunks.
        f"$JS.API.CONSUMER.CREATE.{stream}",
        f"$JS.API.CONSUMER.CREATE.{stream}.>",
        f"$JS.API.CONSUMER.DELETE.{stream}.>",
        f"$JS.API.CONSUMER.INFO.{stream}.>",
        f"$JS.FC.{stream}.>",
    ]


def _write_object_store(bucket: str) -> list[str]:
    return _read_object_store(bucket) + [f"$O.{bucket}.>", f"$JS.API.STREAM.PURGE.OBJ_{bucket}"]


def _runner(user: str, hardware: Iterable[str]) -> Permissions:
    jobs = RUNNER_JOBS.name
    # Stream names and infos (no message in them): what clients look up before using a stream.
    publish = ["$JS.API.INFO", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.INFO.*", event_subject("runner", ">"),
               prediction_stream(">")]
    for hw in hardware:
        durable = runner_durable(hw)
        publish += [
            f"$JS.API.CONSUMER.INFO.{jobs}.{durable}",
            f"$JS.API.CONSUMER.CREATE.{jobs}.{durable}",
            f"$JS.API.CONSUMER.CREATE.{jobs}.{durable}.>",
            f"$JS.API.CONSUMER.DURABLE.CREATE.{jobs}.{durable}",
            f"$JS.API.CONSUMER.MSG.NEXT.{jobs}.{durable}",
            f"$JS.ACK.{jobs}.{durable}.>",
        ]
    # Scheduled instances pull their queue through a durable the scheduler created (`q-<label>-<key>`): the
    # runner may read from and acknowledge any consumer of the job stream, but create or delete none.
    publish += [
        f"$JS.API.CONSUMER.INFO.{jobs}.*",
        f"$JS.API.CONSUMER.MSG.NEXT.{jobs}.*",
        f"$JS.ACK.{jobs}.*.>",
    ]
    publish += _read_object_store(VERSION_PACKAGES_BUCKET) + _read_object_store(FILES_BUCKET)
    publish += _write_object_store(OUTPUTS_BUCKET)
    # Reports and stream items too large for one NATS message go by reference (libs.blobs.spill).
    publish += _write_object_store(SPILL_BUCKET) + _write_object_store(STREAM_SPILL_BUCKET)
    publish += [f"$KV.{RUNNERS_BUCKET}.>", f"$JS.API.STREAM.INFO.KV_{RUNNERS_BUCKET}"]
    return Permissions(publish=tuple(publish), subscribe=(_INBOX.format(user=user), RUNNER_CANCEL,
                                                                    RUNNER_NODE_COMMANDS))


# Core subjects each trusted service publishes besides the JetStream API (its events go through JetStream).
_OWN_SUBJECTS: Mapping[str, tuple[str, ...]] = {
    "gateway": (),
    "registry": (event_subject("registry", ">"),),
    "scheduler": (event_subject("scheduler", ">"), RUNNER_JOBS.subjects[0], RUNNER_CANCEL, RUNNER_NODE_COMMANDS),
    "webhook_dispatcher": (event_subject("webhook_dispatcher", ">"),),
    # Billing publishes nothing: its events stay in its log.
    "billing": (),
}
_JETSTREAM = ("$JS.API.>", "$JS.ACK.>", "$JS.FC.>", "$O.>", "$KV.>")


def permissions_for(user: str, runner_hardware: Iterable[str] = ("cpu",)) -> Permissions | None:
    """The user's permissions; None for the admin, who may do anything."""
    if user == ADMIN_USER:
        return None
    if user == "runner":
        return _runner(user, runner_hardware)
    if user not in _OWN_SUBJECTS:
        raise ValueError(f"unknown NATS user {user!r}")
    # Jobs reach runners through their consumer only; no other service listens to them on the wire.
    return Permissions(publish=(*_JETSTREAM, *_OWN_SUBJECTS[user]), subscribe=(">",),
                       deny_subscribe=(RUNNER_JOBS.subjects[0],))


def _quote(items: Iterable[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"


def authorization_config(passwords: Mapping[str, str], runner_hardware: Iterable[str] = ("cpu",)) -> str:
    """An ``authorization { users = [...] }`` block for nats-server, one user per entry of ``passwords``."""
    hardware = tuple(runner_hardware)
    entries = []
    for user, password in passwords.items():
        if '"' in password or "\\" in password:
            raise ValueError("NATS passwords must not contain quotes or backslashes")
        perms = permissions_for(user, hardware)
        entry = f'    {{user: "{user}", password: "{password}"'
        if perms is not None:
            subscribe = f"allow: {_quote(perms.subscribe)}"
            if perms.deny_subscribe:
                subscribe += f", deny: {_quote(perms.deny_subscribe)}"
            entry += (f", permissions: {{publish: {{allow: {_quote(perms.publish)}}}, "
                      f"subscribe: {{{subscribe}}}, allow_responses: true}}")
        entries.append(entry + "}")
    return "authorization {\n  users = [\n" + ",\n".join(entries) + "\n  ]\n}\n"
