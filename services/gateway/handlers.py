"""The gateway's application layer: what it does for an account, whoever asks.

API routes (`routes/`) and web pages (`web/`) both call these, so they follow the same rules: who may
see or run what (`access.can_access`), input validation against the version's schema, webhook URL checks.
Handlers raise `ApiError` (Replicate's problem+json); HTTP concerns (headers, authentication, rate-limit
buckets, response shapes) stay with the callers.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from libs.blobs import FILES_BUCKET, OUTPUTS_BUCKET, delete_blob, put_blob
from libs.blobs.urls import OUTPUT_REF_PREFIX
from libs.modelpkg import ModelPackageError, PushedPackage, UnpackLimits, delete_package, push_package_file
from libs.predictions import TERMINAL_EVENT_TYPES, TERMINAL_STATUSES, view_after_completion
from libs.rpc import RpcAlreadyExists, RpcError, RpcFailedPrecondition, RpcInvalidArgument, RpcNotFound
from services.gateway.access import can_access
from services.gateway.adapters.registry_grpc import Account
from services.gateway.cancel_after import parse_cancel_after
from services.gateway.errors import ApiError, not_found
from services.gateway.sharing import DATA_REMOVED, SHARED, UNSHARED, PageState
from services.gateway.validation import problem_detail, validate_input
from services.gateway.webhook_urls import validate_webhook_url

log = logging.getLogger(__name__)

# A prediction, as the read model and the scheduler hold it (rendered for clients by libs.predictions).
PredictionView = dict[str, Any]

_VERSION_REF = re.compile(r"^(?:(?P<owner>[^/:]+)/(?P<name>[^/:]+))?(?::)?(?P<id>[0-9a-f]{64})?$")

INVALID_VERSION = ApiError(
    422,
    "Invalid version or not permitted",
    "The specified version does not exist (or perhaps you don't have permission to use it?)",
)


@dataclass(frozen=True)
class NewPrediction:
    """What a client asks for when creating a prediction of an already resolved version."""

    input: dict[str, Any]
    webhook: str | None = None
    webhook_events_filter: list[str] | None = None
    # The `Cancel-After` duration as given (`30s`, `5m`, ...); checked after the input, as the API does.
    cancel_after: str | None = None
    # `api` for API clients, `web` for the playground.
    source: str = "api"
    # Created through this deployment (`owner/name`), which runs it on `hardware` (its release's SKU).
    deployment: str | None = None
    hardware: str | None = None
    # The client's Idempotency-Key and a digest of its request: a retry returns the prediction made before.
    idempotency_key: str | None = None
    request_fingerprint: str = ""


@dataclass(frozen=True)
class Created:
    view: dict[str, Any]
    # True when an earlier request with the same Idempotency-Key created it.
    replayed: bool


@dataclass(frozen=True)
class WebhookActivity:
    """An account's recent webhook deliveries, newest first, and its delivery summary."""

    deliveries: list[dict[str, Any]]
    summary: dict[str, Any]


async def webhook_activity(
    webhooks: Any, account: Account, predictions: list[dict[str, Any]], *, hours: int = 24, limit: int = 100
) -> WebhookActivity:
    """The delivery attempts of `predictions` (those with a webhook) and the account's summary.

    The attempts are read before the summary: the dispatcher's record only grows, so the counts then
    include every attempt listed beside them.
    """
    deliveries: list[dict[str, Any]] = []
    for prediction in [p for p in predictions if p.get("webhook")][:20]:
        for attempt in await webhooks.delivery_attempts(prediction["id"], account.username):
            deliveries.append({**attempt, "prediction_id": prediction["id"]})
    deliveries.sort(key=lambda item: str(item.get("attempted_at") or ""), reverse=True)
    summary = await webhooks.summary(account.username, hours)
    return WebhookActivity(deliveries=deliveries[:limit], summary=summary)


# Models and versions


async def visible_model(
    deps: Any, owner: str, name: str, account: Account | None, *, cached: bool = False
) -> dict[str, Any]:
    """The model if `account` may see it: public ones to everyone, private ones to their owner. Else 404.
    `cached`: only its visibility is needed, which a briefly cached copy knows (`get_model_cached`)."""
    try:
        model = await (deps.registry.get_model_cached if cached else deps.registry.get_model)(owner, name)
    except RpcNotFound as exc:
        raise not_found() from exc
    if model["visibility"] != "public" and (account is None or not can_access(account, model["owner"])):
        raise not_found()
    return model


async def model_readme(deps: Any, model: dict[str, Any]) -> str | None:
    """The latest version's README.md, or else the readme set with PATCH; None when there is neither."""
    text = None
    if model["latest_version_id"]:
        text = await deps.packages.read(model["latest_version_id"], "README.md")
    return text or model.get("readme")


async def runnable_model(deps: Any, account: Account, owner: str, name: str) -> dict[str, Any] | None:
    """The model if `account` may run it (public, or private and theirs); None otherwise."""
    try:
        model = await deps.registry.get_model(owner, name)
    except RpcNotFound:
        return None
    if model["visibility"] != "public" and not can_access(account, model["owner"]):
        return None
    return model


async def latest_runnable_version(deps: Any, account: Account, owner: str, name: str) -> dict[str, Any]:
    """The latest version of `owner/name` for running it; 404 when the model is unknown, hidden or empty."""
    model = await runnable_model(deps, account, owner, name)
    if model is None:
        raise not_found()
    if model["latest_version"] is None:
        raise ApiError(404, "Not found", f"Model {owner}/{name} has no versions yet")
    return model["latest_version"]


async def resolve_version(deps: Any, account: Account, ref: str) -> dict[str, Any]:
    """`<id>`, `owner/name:<id>` or `owner/name` (its latest version), if `account` may run it."""
    match = _VERSION_REF.match(ref)
    if match is None or not (match.group("id") or match.group("owner")):
        raise INVALID_VERSION
    owner, name, version_id = match.group("owner"), match.group("name"), match.group("id")
    if version_id is None:
        model = await runnable_model(deps, account, owner, name)
        if model is None or model["latest_version"] is None:
            raise INVALID_VERSION
        return model["latest_version"]
    try:
        version = await deps.registry.get_version_cached(version_id)
    except RpcNotFound as exc:
        raise INVALID_VERSION from exc
    if owner is not None and (owner, name) != (version["owner"], version["name"]):
        raise INVALID_VERSION
    # A version of one's own (or one's organization's) model needs no visibility lookup.
    if can_access(account, version["owner"]):
        return version
    if await runnable_model(deps, account, version["owner"], version["name"]) is None:
        raise INVALID_VERSION
    return version


# Predictions


def check_input(version: dict[str, Any], input: dict[str, Any]) -> None:
    """422 naming every invalid field (`invalid_fields`), as Replicate answers."""
    problems = validate_input(version["openapi_schema"], input, cache_key=version["id"])
    if problems:
        raise ApiError(
            422, "Input validation failed", problem_detail(problems), invalid_fields=[p.as_dict() for p in problems]
        )


async def create_prediction(
    deps: Any, account: Account, version: dict[str, Any], request: NewPrediction
) -> PredictionView:
    """Check the request and start a prediction of `version` owned by `account`'s account."""
    return (await create_prediction_once(deps, account, version, request)).view


async def create_prediction_once(
    deps: Any, account: Account, version: dict[str, Any], request: NewPrediction
) -> Created:
    """As `create_prediction`, saying whether the Idempotency-Key returned an earlier prediction instead."""
    created = await _create_in_scheduler(deps, account, version, request)
    await _remember_created(deps, created.view)
    return created


async def create_prediction_and_wait(
    deps: Any, account: Account, version: dict[str, Any], request: NewPrediction, seconds: float, *,
    since: float | None = None,
) -> Created:
    """`create_prediction_once`, then `wait_for_prediction`. The read model's insert of the new prediction (a
    commit that waits for the disk) overlaps the wait instead of coming before it; it is done before the answer
    is stored (which updates that row) and before the view is returned."""
    created = await _create_in_scheduler(deps, account, version, request)
    remembered = asyncio.create_task(_remember_created(deps, created.view))
    try:
        view = await wait_for_prediction(deps, created.view, seconds, since=since, remembered=remembered,
                                         just_created=not created.replayed)
    finally:
        await remembered
    return Created(view, created.replayed)


async def _remember_created(deps: Any, view: PredictionView) -> None:
    """Read your writes: the new prediction in the read model before its event comes back over NATS."""
    try:
        await deps.projection.apply_created(view)
    except Exception:  # noqa: BLE001 - the prediction is committed; the event consumer fills the read model
        log.warning("read model not updated for %s; the event consumer will", view["id"], exc_info=True)


async def _create_in_scheduler(
    deps: Any, account: Account, version: dict[str, Any], request: NewPrediction
) -> Created:
    validate_webhook_url(request.webhook)
    check_input(version, request.input)
    cancel_after = parse_cancel_after(request.cancel_after)
    try:
        view = await deps.scheduler.create_prediction(
            version_id=version["id"],
            input=request.input,
            account=account.username,
            webhook=request.webhook,
            webhook_events_filter=list(request.webhook_events_filter) if request.webhook_events_filter else None,
            cancel_after_seconds=cancel_after,
            source=request.source,
            deployment=request.deployment,
            hardware=request.hardware,
            idempotency_key=request.idempotency_key,
            request_fingerprint=request.request_fingerprint,
        )
    except RpcNotFound as exc:
        raise INVALID_VERSION from exc
    replayed = bool(view.pop("idempotent_replay", False))
    return Created(view, replayed)


async def wait_for_prediction(
    deps: Any, view: PredictionView, seconds: float, *, since: float | None = None,
    remembered: Awaitable[None] | None = None, just_created: bool = False,
) -> PredictionView:
    """The prediction once it has finished, or as it is `seconds` after `since` (monotonic; default now).
    `remembered`: the read model's insert of the prediction, awaited before an answer is stored over it.
    `just_created`: `view` is the scheduler's answer to this request's create. The first turn takes it as read
    instead of reading the read model (whose row `remembered` is still writing): only this request knows the id
    yet, and the end, the one change that could come first, reaches the waiter registered here."""
    prediction_id = view["id"]
    deadline = (time.monotonic() if since is None else since) + seconds
    waiter = deps.waiters.register(prediction_id)
    read: PredictionView | None = None
    unread: PredictionView | None = view if just_created else None
    try:
        while True:
            current = waiter.latest_view
            if current is None or current["status"] not in TERMINAL_STATUSES:
                if unread is not None:
                    current = read = unread
                    unread = None
                elif waiter.completion is not None and read is not None:
                    # Woken by the runner's completion: it is answered from the view read before it came (no read
                    # on the answer's path); an end the read model took meanwhile is in `latest_view`. Only once:
                    # a completion that cannot answer (a cold boot) leaves the later turns to read again.
                    current, read = read, None
                else:
                    current = read = await deps.projection.get(prediction_id) or view
            if current["status"] in TERMINAL_STATUSES:
                return current
            if waiter.completion is not None:
                # Stored in JetStream: the end the scheduler records from it, answered without waiting for it.
                ended = view_after_completion(current, waiter.completion)
                if ended is not None:
                    folded_from = int(current.get("stream_version") or 1)
                    ended = {**ended, "stream_version": folded_from}
                    if remembered is not None:
                        await remembered
                    deps.projection.record_answer_soon(ended, folded_from)
                    return ended
            if waiter.saw_terminal:
                # Ended, but an earlier event is not in our read model yet: the scheduler has the truth.
                return await deps.scheduler.get_prediction(prediction_id)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return current
            try:
                # The short cap is a safety net for a notification lost between two gateway instances.
                await asyncio.wait_for(waiter.changed.wait(), timeout=min(remaining, 0.5))
            except TimeoutError:
                pass
            waiter.changed.clear()
    finally:
        deps.waiters.unregister(prediction_id, waiter)


async def find_prediction(deps: Any, prediction_id: str) -> PredictionView:
    """The prediction whoever owns it (404 when there is none): callers decide who may see it."""
    view = await deps.projection.get(prediction_id)
    if view is None:
        # Created moments ago through another gateway instance, or the read model lags: ask the owner.
        try:
            view = await deps.scheduler.get_prediction(prediction_id)
        except RpcNotFound as exc:
            raise not_found() from exc
    return view


async def get_prediction(deps: Any, account: Account, prediction_id: str) -> PredictionView:
    """The prediction if `account` may see it (its own or its organization's); 404 otherwise."""
    view = await find_prediction(deps, prediction_id)
    if not can_access(account, view.get("account")):
        raise not_found()
    return view


async def cancel_prediction(deps: Any, account: Account, prediction_id: str) -> PredictionView:
    await get_prediction(deps, account, prediction_id)
    return await deps.scheduler.cancel_prediction(prediction_id)


# How long an event history waits for the scheduler to record an end that was already answered.
EVENTS_CATCH_UP_SECONDS = 10.0


async def list_prediction_events(deps: Any, account: Account, prediction_id: str) -> list[dict[str, Any]]:
    """The prediction's recorded events. A `Prefer: wait` answer can come from the runner's stored report before
    the scheduler has recorded the end (see `wait_for_prediction`); a history read right after such an answer
    waits for that record, so it never shows a prediction that has ended as still running."""
    view = await get_prediction(deps, account, prediction_id)
    if view["status"] not in TERMINAL_STATUSES:
        return await deps.scheduler.list_events(prediction_id)
    waiter = deps.waiters.register(prediction_id)  # before the read, so the recorded end cannot slip between
    try:
        deadline = time.monotonic() + EVENTS_CATCH_UP_SECONDS
        events = await deps.scheduler.list_events(prediction_id)
        while not any(event["type"] in TERMINAL_EVENT_TYPES for event in events):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning("%s ended but its end is not recorded after %.0f s", prediction_id,
                            EVENTS_CATCH_UP_SECONDS)
                break
            with contextlib.suppress(TimeoutError):
                # Woken by the recorded end; the short cap covers an end published before this gateway listened.
                await asyncio.wait_for(waiter.changed.wait(), timeout=min(remaining, 0.5))
            waiter.changed.clear()
            events = await deps.scheduler.list_events(prediction_id)
        return events
    finally:
        deps.waiters.unregister(prediction_id, waiter)


async def list_predictions(
    deps: Any,
    account: Account,
    *,
    before: tuple[datetime, str] | None,
    limit: int,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    source: str | None = None,
) -> list[PredictionView]:
    """The account's own predictions, newest first, older than `before` (created_at, id), filtered as asked."""
    return await deps.projection.list_for_account(
        account.username, before=before, limit=limit, created_after=created_after, created_before=created_before,
        source=source,
    )


async def viewable_prediction(deps: Any, account: Account | None, prediction_id: str) -> PredictionView:
    """The prediction for its web page: its owner's (and organization's) always, anyone's once shared."""
    view = await find_prediction(deps, prediction_id)
    if account is not None and can_access(account, view.get("account")):
        return view
    if (await deps.pages.state(prediction_id)).shared:
        return view
    raise not_found()


async def share_prediction(deps: Any, account: Account, prediction_id: str, shared: bool) -> PageState:
    """Make the prediction's page readable by anyone with its link, or by its owner only again."""
    await get_prediction(deps, account, prediction_id)
    state = await deps.pages.state(prediction_id)
    if state.shared != shared:
        await deps.pages.record(prediction_id, SHARED if shared else UNSHARED, account.username)
    return await deps.pages.state(prediction_id)


async def remove_prediction_data(deps: Any, account: Account, prediction_id: str) -> PredictionView:
    """Delete a finished prediction's output files and blank its input, output and logs."""
    view = await get_prediction(deps, account, prediction_id)
    if view["status"] not in TERMINAL_STATUSES:
        raise ApiError(409, "Conflict", "A prediction's data can be removed once it has finished; cancel it first")
    for key in output_keys(view.get("output")):
        await delete_blob(deps.bus.js, OUTPUTS_BUCKET, key)
    if not view.get("data_removed"):
        await deps.pages.record(prediction_id, DATA_REMOVED, account.username)
    return await find_prediction(deps, prediction_id)


def output_keys(value: Any) -> list[str]:
    """The outputs bucket keys that an output refers to, at any depth."""
    if isinstance(value, str):
        return [value[len(OUTPUT_REF_PREFIX):]] if value.startswith(OUTPUT_REF_PREFIX) else []
    if isinstance(value, list):
        return [key for item in value for key in output_keys(item)]
    if isinstance(value, dict):
        return [key for item in value.values() for key in output_keys(item)]
    return []


# Tokens


async def list_own_tokens(deps: Any, account: Account) -> list[dict[str, Any]]:
    return await deps.registry.list_tokens(account.username)


async def create_own_token(deps: Any, account: Account, name: str) -> dict[str, Any]:
    """The new token, its secret included: the only time anyone sees it."""
    return await deps.registry.create_token(account.username, name)


async def change_own_token(deps: Any, account: Account, action: str, token_id: str) -> dict[str, Any]:
    """`disable`, `enable` or `revoke` one of the account's own tokens (another account's is 404)."""
    try:
        return await deps.registry.change_token(action, token_id, account.username)
    except RpcFailedPrecondition as exc:
        raise ApiError(409, "Conflict", exc.details() or "The token cannot be changed that way") from exc


# Files


def _new_file_id() -> str:
    return base64.b32encode(secrets.token_bytes(16)).decode().lower().rstrip("=")


def _digests(data: bytes) -> tuple[str, str]:
    return hashlib.sha256(data).hexdigest(), hashlib.md5(data, usedforsecurity=False).hexdigest()


async def store_file(
    deps: Any, account: Account, data: bytes, *, name: str, content_type: str, metadata: dict[str, Any]
) -> dict[str, Any]:
    """Put the bytes in the files bucket and record the file in the registry; returns the registry record."""
    if "\x00" in content_type:
        raise ApiError(422, "Input validation failed", "- type: must not contain NUL characters\n",
                       invalid_fields=[{"type": "invalid", "field": "type",
                                        "description": "must not contain NUL characters"}])
    sha256, md5 = await asyncio.to_thread(_digests, data)
    file_id = _new_file_id()
    await put_blob(deps.bus.js, FILES_BUCKET, file_id, data, content_type=content_type,
                   metadata={"account": account.username})
    try:
        return await deps.registry.create_file(
            id=file_id, owner=account.username, name=name, content_type=content_type, size=len(data),
            sha256=sha256, md5=md5, metadata_json=json.dumps(metadata),
        )
    except BaseException:
        await delete_blob(deps.bus.js, FILES_BUCKET, file_id)
        raise


# Pushing versions

# Each push imports user code and may run pip; a few at a time keep the gateway responsive.
_PUSHES = asyncio.Semaphore(2)
_ACCEPTED_TYPES = ("application/gzip", "application/x-gzip", "application/x-tar+gzip", "application/octet-stream")


def _scratch_file(directory: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix="push-", suffix=".tar.gz", dir=directory)
    os.close(fd)
    return Path(name)


def _gateway_dir(deps: Any) -> Path:
    return Path(deps.settings.data_dir).resolve() / "gateway"


async def _receive(chunks: AsyncIterator[bytes], declared_length: str, dest: Path, limit: int) -> int:
    if declared_length.isdigit() and int(declared_length) > limit:
        raise ApiError(413, "Payload too large", f"A model package may be at most {limit} bytes.")
    size = 0
    with dest.open("wb") as out:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "Payload too large", f"A model package may be at most {limit} bytes.")
            await asyncio.to_thread(out.write, chunk)
    if size == 0:
        raise ApiError(
            422, "Invalid model package", "The request body is empty; send the model directory as a .tar.gz."
        )
    return size


async def _ensure_model(deps: Any, owner: str, name: str, visibility: str, hardware: str) -> None:
    try:
        await deps.registry.get_model(owner, name)
        return
    except RpcNotFound:
        pass
    with contextlib.suppress(RpcAlreadyExists):
        await deps.registry.create_model(owner, name, visibility=visibility, hardware=hardware)


async def _record(
    deps: Any, account: Account, owner: str, name: str, pushed: PushedPackage
) -> tuple[dict[str, Any], bool]:
    try:
        existing = await deps.registry.get_version(pushed.version_id)
    except RpcNotFound:
        existing = None
    if existing is not None and (existing["owner"], existing["name"]) != (owner, name):
        # Only a model the pusher may see is named: another account's private model must stay unknown.
        where = (
            f"{existing['owner']}/{existing['name']}" if can_access(account, existing["owner"]) else "another model"
        )
        raise ApiError(
            409, "Version already exists",
            f"This exact package is already a version of {where}; change its content to push it here.",
        )
    version = await deps.registry.create_version(owner, name, pushed)
    return version, existing is None


async def _undo_upload(deps: Any, pushed: PushedPackage) -> None:
    """Remove a package stored by this push when no version ended up referring to it."""
    if not pushed.stored_now:
        return
    try:
        await deps.registry.get_version(pushed.version_id)
        return
    except RpcNotFound:
        pass
    except RpcError:
        return  # unknown: keeping an orphan package is harmless, deleting a referenced one is not
    await delete_package(deps.bus.js, pushed.version_id)


@dataclass(frozen=True)
class PushedVersion:
    version: dict[str, Any]
    created: bool
    warnings: list[str]


async def push_version(
    deps: Any,
    account: Account,
    owner: str,
    name: str,
    chunks: AsyncIterator[bytes],
    *,
    content_type: str = "application/gzip",
    declared_length: str = "",
    visibility: str = "private",
    hardware: str = "cpu",
) -> PushedVersion:
    """Make a version of `owner/name` from a model directory's .tar.gz, creating the model on first push."""
    if not can_access(account, owner):
        raise ApiError(403, "Forbidden", f"You are not allowed to push versions of {owner}/{name}.")
    if content_type.split(";")[0].strip().lower() not in _ACCEPTED_TYPES:
        raise ApiError(415, "Unsupported media type",
                       "Send the model directory as a .tar.gz request body (Content-Type: application/gzip).")
    limit = deps.settings.push_max_bytes
    work_root = _gateway_dir(deps) / "uploads"
    work_root.mkdir(parents=True, exist_ok=True)
    upload = await asyncio.to_thread(_scratch_file, work_root)
    try:
        await _receive(chunks, declared_length, upload, limit)
        async with _PUSHES:
            unpack = UnpackLimits(max_size=limit, max_entries=deps.settings.push_max_files,
                                  max_ratio=deps.settings.push_max_ratio, max_depth=deps.settings.push_max_depth)
            pushed = await push_package_file(deps.bus.js, upload, env_cache_dir=_gateway_dir(deps) / "envs",
                                             max_unpacked=limit, work_dir=work_root, limits=unpack)
    except ModelPackageError as exc:
        # Environment builds name files under the gateway's data directory; the client has no use for it.
        gateway_dir = str(_gateway_dir(deps))
        detail = str(exc).replace(f"{gateway_dir}/", "").replace(gateway_dir, "")
        raise ApiError(422, "Invalid model package", detail) from None
    finally:
        await asyncio.to_thread(upload.unlink, True)
    try:
        await _ensure_model(deps, owner, name, visibility, hardware)
        version, created = await _record(deps, account, owner, name, pushed)
    except RpcInvalidArgument as exc:
        await _undo_upload(deps, pushed)
        raise ApiError(422, "Invalid model", str(exc.details() or exc)) from None
    except BaseException:
        await _undo_upload(deps, pushed)
        raise
    for warning in pushed.warnings:
        log.warning("push %s/%s %s: %s", owner, name, pushed.version_id, warning)
    return PushedVersion(version, created, list(pushed.warnings))
