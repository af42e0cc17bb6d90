"""The web interface: pages rendered on the server, and the JSON endpoints their script calls.

Every action goes through `services.gateway.handlers`, as the API does, with the same per-token rate limits.
A session is the API token kept encrypted in an HttpOnly, SameSite=Strict cookie (`sessions.py`). State
changing requests also need the session's CSRF token (a form field or the `X-CSRF-Token` header) and, when
the browser says where they come from (`Origin`, else `Referer`), our own origin.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.convertors import Convertor, register_url_convertor

from libs.predictions import ENDED_STATUSES, render_prediction
from libs.rpc import RpcError, RpcNotFound
from services.gateway import handlers
from services.gateway.access import can_access
from services.gateway.adapters.registry_grpc import Account
from services.gateway.auth import authenticate_counted, enforce_rate_limit
from services.gateway.errors import ApiError, not_found
from services.gateway.projection import run_counts
from services.gateway.routes.files import create_file
from services.gateway.routes.webhooks import _webhooks as webhooks_client
from services.gateway.web.forms import form_fields, output_kind
from services.gateway.web.markdown import render_markdown
from services.gateway.web.sessions import (
    COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    Session,
    SessionCodec,
    csrf_matches,
    load_key,
)

HERE = Path(__file__).parent
STATIC = HERE / "static"
STATIC_FILES = {"app.css": "text/css", "app.js": "text/javascript", "favicon.svg": "image/svg+xml"}
DASHBOARD_PAGE_SIZE = 50

templates = Jinja2Templates(directory=str(HERE / "templates"))

# Pages ask the browser to load nothing from anywhere else, and to run no inline script.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; script-src 'self'; "
        "style-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

UNAUTHENTICATED = ApiError(401, "Unauthenticated", "Log in to do this")
BAD_CSRF = ApiError(403, "Forbidden", "The form is stale or came from another site; reload the page and try again")


class OwnerConvertor(Convertor[str]):
    """A model owner in a page path: any segment but the API's `v1`, so unknown API paths stay API 404s."""

    regex = r"(?!v1/)(?!static/)(?!web/)[A-Za-z0-9][A-Za-z0-9_.-]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("owner", OwnerConvertor())

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Viewer:
    account: Account
    session: Session


def _deps(request: Request) -> Any:
    return request.app.state.deps


async def _codec(request: Request) -> SessionCodec:
    codec = getattr(request.app.state, "web_sessions", None)
    if codec is None:
        settings = _deps(request).settings
        key = await asyncio.to_thread(load_key, settings.web_session_key, settings.data_dir)
        codec = SessionCodec(key, int(settings.web_session_hours * 3600))
        request.app.state.web_sessions = codec
    return codec


async def _viewer(request: Request) -> Viewer | None:
    """The logged-in account, or None; each authenticated request takes from the token's rate-limit bucket."""
    session = (await _codec(request)).read(request.cookies.get(COOKIE))
    if session is None:
        return None
    account = await _deps(request).registry.authenticate(session.token)
    if account is None:
        return None  # the token was disabled or revoked: the session ended with it
    enforce_rate_limit(request, account)
    return Viewer(account, session)


async def _required_viewer(request: Request) -> Viewer:
    viewer = await _viewer(request)
    if viewer is None:
        raise UNAUTHENTICATED
    return viewer


def _same_origin(request: Request) -> bool:
    """False when the browser says the request came from a page of another origin."""
    source = request.headers.get("origin")
    if source is None:
        source = request.headers.get("referer")
        if not source:
            return True  # not a browser, or one that says nothing: the CSRF token still has to match
    if source == "null":
        return False
    parts = urlsplit(source)
    claimed = f"{parts.scheme}://{parts.netloc}"
    own = {_deps(request).settings.origin, f"{request.url.scheme}://{request.url.netloc}"}
    host = request.headers.get("host")
    if host:
        own.add(f"{request.url.scheme}://{host}")
    return claimed in own


def _check_write(request: Request, viewer: Viewer, presented: str | None) -> None:
    if not _same_origin(request) or not csrf_matches(viewer.session, presented):
        raise BAD_CSRF


def _page(
    request: Request, template: str, viewer: Viewer | None, status_code: int = 200, **context: Any
) -> HTMLResponse:
    response = templates.TemplateResponse(
        request,
        template,
        {
            "viewer": viewer,
            "csrf": viewer.session.csrf if viewer else "",
            "origin": _deps(request).settings.origin,
            "path": request.url.path,
            **context,
        },
        status_code=status_code,
    )
    response.headers.update(SECURITY_HEADERS)
    return response


def _error_page(request: Request, viewer: Viewer | None, error: ApiError) -> HTMLResponse:
    response = _page(request, "error.html", viewer, status_code=error.status, error=error)
    if error.headers:
        response.headers.update(error.headers)
    return response


def html_errors(page: Callable[..., Awaitable[Response]]) -> Callable[..., Awaitable[Response]]:
    """Show a page's `ApiError` (404, 429 from the rate limit, ...) as an HTML page, not problem+json."""

    @functools.wraps(page)
    async def wrapper(*args: Any, **kwargs: Any) -> Response:
        try:
            return await page(*args, **kwargs)
        except ApiError as error:
            return _error_page(kwargs["request"], None, error)

    return wrapper


def _login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _safe_next(value: str | None) -> str:
    """Only paths of this site: never `//host` or a scheme, so a login link cannot send anyone elsewhere."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def _json(data: Any) -> str:
    """JSON for a `<script type="application/json">` block: `<` escaped so no text can close the block."""
    return json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# Static assets


@router.get("/static/{name}")
async def static_file(name: str) -> Response:
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise not_found()
    return FileResponse(STATIC / name, media_type=media_type, headers={"Cache-Control": "no-cache"})


# Login


@router.get("/login")
@html_errors
async def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return _page(request, "login.html", await _viewer(request), next=_safe_next(next), error=None)


@router.post("/login")
@html_errors
async def login(request: Request) -> Response:
    form = await request.form()
    target = _safe_next(str(form.get("next") or "/"))
    if not _same_origin(request):
        return _page(request, "login.html", None, status_code=403, next=target, error=BAD_CSRF.detail)
    token = str(form.get("token") or "").strip()
    # Counted and throttled per address like the API's tokens: the form is no faster way to guess one.
    account = await authenticate_counted(request, token, count_failure=bool(token))
    if account is None:
        return _page(request, "login.html", None, status_code=401, next=target,
                     error="That token is not valid: check it, or create a new one with `cogwheel token create`.")
    codec = await _codec(request)
    cookie, _ = codec.issue(token)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE, cookie, max_age=codec.max_age_seconds, httponly=True, samesite="strict",
        secure=_deps(request).settings.origin.startswith("https://"), path="/",
    )
    return response


@router.post("/logout")
@html_errors
async def logout(request: Request) -> Response:
    viewer = await _viewer(request)
    form = await request.form()
    if viewer is not None:
        _check_write(request, viewer, str(form.get(CSRF_FIELD) or ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


# Explore


@router.get("/")
@html_errors
async def explore(request: Request, q: str = "", collection: str = "") -> HTMLResponse:
    viewer = await _viewer(request)
    deps = _deps(request)
    account = viewer.account if viewer else None
    title = "Models"
    try:
        collections, _ = await deps.registry.list_collections()
    except RpcError:
        collections = []
    if collection:
        try:
            found = await deps.registry.get_collection(collection)
        except RpcNotFound:
            return _error_page(request, viewer, not_found("There is no such collection."))
        models = []
        for ref in found["models"]:
            owner, _, name = ref.partition("/")
            try:
                models.append(await handlers.visible_model(deps, owner, name, account))
            except ApiError:
                continue
        title = found["name"]
    else:
        query = q.strip()[:1000]
        models, _ = await deps.registry.list_models(query=query) if query else await deps.registry.list_models()
        if q.strip():
            title = f"Models matching “{q.strip()}”"
    mine: list[dict[str, Any]] = []
    if account is not None and not collection and not q.strip():
        # The account's own models and its organizations', private ones included.
        mine, _ = await deps.registry.list_models(owners=[account.username, *account.organizations])
        shown = {(m["owner"], m["name"]) for m in mine}
        models = [m for m in models if (m["owner"], m["name"]) not in shown]
    counts = await run_counts(deps.engine, [f"{m['owner']}/{m['name']}" for m in [*mine, *models]])
    return _page(request, "explore.html", viewer, models=models, mine=mine, counts=counts, q=q, title=title,
                 collections=collections, collection=collection)


# Predictions


@router.get("/p/{prediction_id}")
@html_errors
async def prediction_page(prediction_id: str, request: Request) -> HTMLResponse:
    viewer = await _viewer(request)
    deps = _deps(request)
    try:
        view = await handlers.viewable_prediction(deps, viewer.account if viewer else None, prediction_id)
    except ApiError as error:
        return _error_page(request, viewer, error)
    owner = viewer is not None and can_access(viewer.account, view.get("account"))
    state = await deps.pages.state(prediction_id)
    body = _for_reader(render_prediction(view, deps.settings.origin), owner)
    config = {"prediction": body, "owner": owner, "shared": state.shared, "terminal": list(ENDED_STATUSES)}
    return _page(request, "prediction.html", viewer, prediction=body, owner=owner, shared=state.shared,
                 config=_json(config), account=view.get("account"))


@router.get("/dashboard")
@html_errors
async def dashboard(request: Request, tab: str = "predictions") -> Response:
    viewer = await _viewer(request)
    if viewer is None:
        return _login_redirect(request)
    deps = _deps(request)
    views = await handlers.list_predictions(deps, viewer.account, before=None, limit=DASHBOARD_PAGE_SIZE)
    rows = [render_prediction(view, deps.settings.origin) for view in views]
    summary, deliveries, webhooks_error = None, [], None
    if tab == "webhooks":
        try:
            activity = await handlers.webhook_activity(webhooks_client(request), viewer.account, rows)
            summary, deliveries = activity.summary, activity.deliveries
        except RpcError:
            webhooks_error = "The webhook service is not answering right now."
    config = {"terminal": list(ENDED_STATUSES)}
    return _page(request, "dashboard.html", viewer, rows=rows, tab=tab, summary=summary,
                 deliveries=deliveries, webhooks_error=webhooks_error, config=_json(config))


# Account


async def _account_page(request: Request, viewer: Viewer, *, new_token: dict[str, Any] | None = None,
                        error: str | None = None, status_code: int = 200) -> HTMLResponse:
    deps = _deps(request)
    tokens = await handlers.list_own_tokens(deps, viewer.account)
    secret = None
    try:
        secret = await webhooks_client(request).signing_secret(viewer.account.username)
    except RpcError:
        secret = None
    return _page(request, "account.html", viewer, tokens=tokens, new_token=new_token, secret=secret,
                 error=error, status_code=status_code)


@router.get("/account")
@html_errors
async def account_page(request: Request) -> Response:
    viewer = await _viewer(request)
    if viewer is None:
        return _login_redirect(request)
    return await _account_page(request, viewer)


@router.post("/account/tokens")
@html_errors
async def create_token(request: Request) -> Response:
    viewer = await _viewer(request)
    if viewer is None:
        return _login_redirect(request)
    form = await request.form()
    try:
        _check_write(request, viewer, str(form.get(CSRF_FIELD) or ""))
    except ApiError as error:
        return _error_page(request, viewer, error)
    name = str(form.get("name") or "").strip()
    if not name or len(name) > 100:
        return await _account_page(request, viewer, error="Give the token a name of at most 100 characters.",
                                   status_code=422)
    created = await handlers.create_own_token(_deps(request), viewer.account, name)
    # Rendered, not redirected: the secret is shown this once and never travels in a URL.
    return await _account_page(request, viewer, new_token=created, status_code=201)


@router.post("/account/tokens/{token_id}/{action}")
@html_errors
async def change_token(token_id: str, action: str, request: Request) -> Response:
    viewer = await _viewer(request)
    if viewer is None:
        return _login_redirect(request)
    form = await request.form()
    try:
        _check_write(request, viewer, str(form.get(CSRF_FIELD) or ""))
        if action not in ("disable", "enable", "revoke"):
            raise not_found()
        await handlers.change_own_token(_deps(request), viewer.account, action, token_id)
    except ApiError as error:
        return _error_page(request, viewer, error)
    except RpcNotFound:
        return _error_page(request, viewer, not_found())
    return RedirectResponse("/account", status_code=303)


# Model pages (last: `/{owner}/{name}` would otherwise shadow the paths above)


@router.get("/{owner:owner}/{name}")
@html_errors
async def model_page(owner: str, name: str, request: Request, version: str = "") -> HTMLResponse:
    viewer = await _viewer(request)
    deps = _deps(request)
    try:
        model = await handlers.visible_model(deps, owner, name, viewer.account if viewer else None)
    except ApiError as error:
        return _error_page(request, viewer, error)
    versions = await deps.registry.list_versions(owner, name)
    chosen = next((v for v in versions if v["id"] == version), None) or model.get("latest_version")
    if version and (chosen is None or chosen["id"] != version):
        return _error_page(request, viewer, not_found("That version does not exist."))
    readme = await handlers.model_readme(deps, model)
    schema = chosen["openapi_schema"] if chosen else None
    fields = form_fields(schema)
    counts = await run_counts(deps.engine, [f"{owner}/{name}"])
    config = {
        "model": f"{owner}/{name}",
        "version": chosen["id"] if chosen else None,
        "latest": bool(chosen and model.get("latest_version") and chosen["id"] == model["latest_version"]["id"]),
        "fields": [f.as_dict() for f in fields],
        "output": output_kind(schema),
        "origin": deps.settings.origin,
        "terminal": list(ENDED_STATUSES),
    }
    return _page(request, "model.html", viewer, model=model, versions=versions, version=chosen, readme=readme,
                 readme_html=render_markdown(readme) if readme else "",
                 fields=fields, runs=counts.get(f"{owner}/{name}", 0), config=_json(config))


# JSON endpoints for the page script


api = APIRouter(prefix="/web/api", include_in_schema=False)


def _for_reader(body: dict[str, Any], owner: bool) -> dict[str, Any]:
    """What a shared prediction shows people other than its owner: not where its webhooks go."""
    if owner:
        return body
    return {key: value for key, value in body.items() if key not in ("webhook", "webhook_events_filter")}


def _prediction_json(
    request: Request, view: dict[str, Any], status_code: int = 200, owner: bool = True
) -> JSONResponse:
    body = _for_reader(render_prediction(view, _deps(request).settings.origin), owner)
    return JSONResponse(body, status_code=status_code, headers={"Cache-Control": "no-store"})


@api.post("/models/{owner}/{name}/predictions")
async def run_model(owner: str, name: str, request: Request) -> JSONResponse:
    """The playground's Run: `{"input": {...}, "version": "<id>"}` (no version: the latest)."""
    viewer = await _required_viewer(request)
    _check_write(request, viewer, request.headers.get(CSRF_HEADER))
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        raise ApiError(400, "Bad request", "Request body is not valid JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("input", {}), dict):
        raise ApiError(422, "Input validation failed", "- input: must be an object\n")
    deps = _deps(request)
    version_id = body.get("version")
    if version_id:
        version = await handlers.resolve_version(deps, viewer.account, f"{owner}/{name}:{version_id}")
    else:
        version = await handlers.latest_runnable_version(deps, viewer.account, owner, name)
    view = await handlers.create_prediction(
        deps, viewer.account, version, handlers.NewPrediction(input=body.get("input") or {}, source="web")
    )
    return _prediction_json(request, view, status_code=201)


@api.get("/predictions")
async def list_predictions(request: Request) -> JSONResponse:
    viewer = await _required_viewer(request)
    deps = _deps(request)
    views = await handlers.list_predictions(deps, viewer.account, before=None, limit=DASHBOARD_PAGE_SIZE)
    return JSONResponse({"results": [render_prediction(v, deps.settings.origin) for v in views]},
                        headers={"Cache-Control": "no-store"})


@api.get("/predictions/{prediction_id}")
async def get_prediction(prediction_id: str, request: Request) -> JSONResponse:
    viewer = await _viewer(request)
    view = await handlers.viewable_prediction(_deps(request), viewer.account if viewer else None, prediction_id)
    owner = viewer is not None and can_access(viewer.account, view.get("account"))
    return _prediction_json(request, view, owner=owner)


@api.post("/predictions/{prediction_id}/cancel")
async def cancel_prediction(prediction_id: str, request: Request) -> JSONResponse:
    viewer = await _required_viewer(request)
    _check_write(request, viewer, request.headers.get(CSRF_HEADER))
    return _prediction_json(request, await handlers.cancel_prediction(_deps(request), viewer.account, prediction_id))


@api.post("/predictions/{prediction_id}/share")
async def share_prediction(prediction_id: str, request: Request) -> JSONResponse:
    """`{"shared": true}` makes the page readable by anyone with its link; false makes it private again."""
    viewer = await _required_viewer(request)
    _check_write(request, viewer, request.headers.get(CSRF_HEADER))
    try:
        shared = json.loads(await request.body() or b"{}").get("shared", True)
    except (ValueError, AttributeError):
        raise ApiError(400, "Bad request", "Send {\"shared\": true} or {\"shared\": false}") from None
    state = await handlers.share_prediction(_deps(request), viewer.account, prediction_id, bool(shared))
    return JSONResponse({"shared": state.shared})


@api.post("/predictions/{prediction_id}/remove")
async def remove_prediction_data(prediction_id: str, request: Request) -> JSONResponse:
    viewer = await _required_viewer(request)
    _check_write(request, viewer, request.headers.get(CSRF_HEADER))
    view = await handlers.remove_prediction_data(_deps(request), viewer.account, prediction_id)
    return _prediction_json(request, view)


@api.post("/files")
async def upload_file(request: Request) -> JSONResponse:
    """A playground file input: the same upload as `POST /v1/files`, for the session's account."""
    viewer = await _required_viewer(request)
    _check_write(request, viewer, request.headers.get(CSRF_HEADER))
    return await create_file(request, viewer.account)
