"""``POST /webhooks/stripe/{merchant_id}/{env}``: verify, check, store durably, then 2xx.

A plain Starlette endpoint (no request models, no dependency injection) because this is the
hot path. The order of checks is: who (404), size (413), signature (400), shape and
ownership (400), then the group-committed insert (200, or 503 if it did not commit).
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import orjson
from sqlalchemy.exc import DBAPIError
from starlette.datastructures import State
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from merchant_backend import clock, logs, metrics
from merchant_backend.api.errors import error_body
from merchant_backend.errors import EventRejected
from merchant_backend.runtime import Runtime
from merchant_backend.services import ingest, merchants
from merchant_backend.services.ingest import Credentials, InboxUnavailable, InboxWriter, SecretCache
from merchant_backend.stripe.signature import SignatureRejected, verify
from merchant_backend.stripe.webhook_event import check_belongs, parse_event
from merchant_backend.validation import ENVS, is_merchant_id, loggable_id, parse_ascii_int

log = logs.get("merchant_backend.webhooks")

_JSON = "application/json"


class _TooLarge(Exception):
    pass


def _json(status: int, body: bytes) -> Response:
    return Response(body, status_code=status, media_type=_JSON)


def _error(status: int, code: str, message: str) -> Response:
    return _json(status, orjson.dumps(error_body(code, message)))


_OK_NEW = b'{"received":true,"duplicate":false}'
_OK_DUP = b'{"received":true,"duplicate":true}'
_OK_IGNORED = b'{"received":true,"duplicate":false,"ignored":true}'

# The answers and counters of the hot path, built once (a response is never changed once built).
_OK = {
    "stored": _json(200, _OK_NEW),
    "duplicate": _json(200, _OK_DUP),
    "ignored": _json(200, _OK_IGNORED),
}
_COUNTED = {
    (env, outcome): metrics.WEBHOOKS.labels(env, outcome) for env in ENVS for outcome in _OK
}


def _headers(scope: Scope) -> tuple[str | None, str | None]:
    """``Content-Length`` and ``Stripe-Signature`` (the first of each, as Starlette's ``Headers``
    would give them), read in one pass over the ASGI headers without building a ``Headers``."""
    length = signature = None
    for name, value in scope["headers"]:
        if name == b"stripe-signature":
            if signature is None:
                signature = value.decode("latin-1")
        elif name == b"content-length" and length is None:
            length = value.decode("latin-1")
    return length, signature


async def _read_body(receive_: Receive, declared: str | None, limit: int) -> bytes:
    size_declared = parse_ascii_int(declared) if declared is not None else None
    if size_declared is not None and size_declared > limit:
        raise _TooLarge
    # The ASGI messages themselves: Starlette's stream() generator costs more than the copy.
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive_()
        if message["type"] != "http.request":
            raise ClientDisconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def receive(request: Request) -> Response:
    """The route (for a request the fast path in ``asgi`` does not take, e.g. under a root
    path)."""
    return await handle(
        request.app.state,
        request.path_params["merchant_id"],
        request.path_params["env"],
        request.scope,
        request.receive,
    )


async def handle(
    state: State, merchant_id: str, env: str, scope: Scope, receive_: Receive
) -> Response:
    cache: SecretCache = state.secret_cache
    writer: InboxWriter = state.inbox_writer
    settings = state.runtime.settings

    if env not in ENVS:
        # Counted under "unknown" only: the path's env is free text, and the rejections table
        # (and a metrics label) must not take arbitrary values from the outside.
        metrics.WEBHOOKS.labels("unknown", "not_found").inc()
        metrics.WEBHOOK_REJECTIONS.labels("unknown", "unknown_env").inc()
        log.warning("webhook rejected", merchant_id=loggable_id(merchant_id), reason="unknown_env")
        return _error(404, "not_found", "unknown environment: use stage or live")
    if not is_merchant_id(merchant_id):
        # Not one of our ids: no lookup, and only its start in the log (issue 9).
        metrics.WEBHOOKS.labels(env, "not_found").inc()
        metrics.WEBHOOK_REJECTIONS.labels(env, "unknown_merchant").inc()
        log.warning(
            "webhook rejected",
            merchant_id=loggable_id(merchant_id),
            env=env,
            reason="unknown_merchant",
        )
        return _error(404, "not_found", "unknown merchant, or no data set for this environment")
    creds = cache.peek(merchant_id, env)
    if creds is None:
        try:
            creds = await asyncio.to_thread(cache.get, merchant_id, env)
        except DBAPIError as exc:
            return _unavailable(env, merchant_id, None, exc)
    if creds is None:
        return await _no_data_set(state.runtime, writer, merchant_id, env)

    declared_length, header = _headers(scope)
    try:
        body = await _read_body(receive_, declared_length, settings.webhook_max_body)
    except _TooLarge:
        return _reject(
            writer,
            merchant_id,
            env,
            413,
            "too_large",
            f"body is larger than {settings.webhook_max_body} bytes",
        )

    at = clock.now()
    try:
        try:
            verify(
                body,
                header,
                creds.secrets.signing_secrets(at),
                now=at,
                tolerance=settings.webhook_tolerance,
            )
        except SignatureRejected as first:
            if first.reason not in ("bad_signature", "no_signing_secret"):
                raise
            # The secret may have changed in another process: read it again once.
            try:
                fresh: Credentials | None = await asyncio.to_thread(
                    cache.get, merchant_id, env, fresh=True
                )
            except DBAPIError as exc:
                return _unavailable(env, merchant_id, None, exc)
            if fresh is None:
                return await _no_data_set(state.runtime, writer, merchant_id, env)
            creds = fresh
            verify(
                body,
                header,
                creds.secrets.signing_secrets(at),
                now=at,
                tolerance=settings.webhook_tolerance,
            )
        event = parse_event(body)
        check_belongs(event, env, creds.account_id)
    except EventRejected as exc:
        return _reject(writer, merchant_id, env, 400, exc.reason, str(exc))

    try:
        is_new = await ingest.submit(writer, event, merchant_id, env, body)
    except InboxUnavailable as exc:
        return _unavailable(env, merchant_id, event.event_id, exc)
    outcome = "duplicate" if not is_new else "stored" if event.handled else "ignored"
    _COUNTED[env, outcome].inc()
    return _OK[outcome]


def _reject(
    writer: InboxWriter, merchant_id: str, env: str, status: int, reason: str, message: str
) -> Response:
    metrics.WEBHOOKS.labels(env, "rejected").inc()
    metrics.WEBHOOK_REJECTIONS.labels(env, reason).inc()
    writer.note_rejection(merchant_id, env, reason)
    log.warning("webhook rejected", merchant_id=merchant_id, env=env, reason=reason, detail=message)
    code = "payload_too_large" if status == 413 else reason
    return _error(status, code, message)


def _unavailable(env: str, merchant_id: str, event_id: str | None, exc: Exception) -> Response:
    """503, never 2xx: Stripe keeps the event and retries (for up to three days in live mode)."""
    metrics.WEBHOOKS.labels(env, "unavailable").inc()
    log.error(
        "webhook not stored",
        merchant_id=merchant_id,
        env=env,
        event_id=event_id,
        reason=logs.error_text(exc),
    )
    return _error(503, "unavailable", "the event could not be stored; Stripe will retry")


async def _no_data_set(
    runtime: Runtime, writer: InboxWriter, merchant_id: str, env: str
) -> Response:
    try:
        exists = await asyncio.to_thread(merchants.merchant_exists, runtime, merchant_id)
    except DBAPIError as exc:
        return _unavailable(env, merchant_id, None, exc)
    if not exists:
        # Only counted: the rejections table belongs to a merchant, and this id is none.
        metrics.WEBHOOKS.labels(env, "not_found").inc()
        metrics.WEBHOOK_REJECTIONS.labels(env, "unknown_merchant").inc()
        log.warning("webhook rejected", merchant_id=merchant_id, env=env, reason="unknown_merchant")
        return _error(404, "not_found", "unknown merchant, or no data set for this environment")
    metrics.WEBHOOKS.labels(env, "not_found").inc()
    metrics.WEBHOOK_REJECTIONS.labels(env, "no_data_set").inc()
    writer.note_rejection(merchant_id, env, "no_data_set")
    log.warning("webhook rejected", merchant_id=merchant_id, env=env, reason="no_data_set")
    # The same answer as for an unknown merchant: a URL does not reveal which merchants exist.
    return _error(404, "not_found", "unknown merchant, or no data set for this environment")


# The fast path: Stripe's POSTs skip FastAPI's middleware stack and router. At thousands of
# deliveries a second those layers cost a fifth of the CPU of a request and do nothing here
# (no dependencies, no body models, exceptions handled below with the app's own handlers).
_PREFIX = "/webhooks/stripe/"


def match(path: str) -> dict[str, str] | None:
    """``{merchant_id, env}`` if ``path`` is exactly a webhook URL (as the route would match)."""
    if not path.startswith(_PREFIX):
        return None
    merchant_id, sep, env = path[len(_PREFIX) :].partition("/")
    if not sep or not merchant_id or not env or "/" in env:
        return None
    return {"merchant_id": merchant_id, "env": env}


async def asgi(
    app: Any, params: dict[str, str], scope: Scope, receive_: Receive, send: Send
) -> None:
    """Serve one webhook POST as the route would, with the app's exception handlers."""
    scope["app"] = app
    scope["path_params"] = params
    try:
        response = await handle(app.state, params["merchant_id"], params["env"], scope, receive_)
    except Exception as exc:
        request = Request(scope, receive_)
        handler = next(
            (app.exception_handlers[c] for c in type(exc).__mro__ if c in app.exception_handlers),
            None,
        )
        log.error("webhook failed", merchant_id=loggable_id(params["merchant_id"]), exc_info=True)
        if handler is None:
            response = _error(500, "internal_error", "internal error")
        else:
            answer = handler(request, exc)
            response = await answer if inspect.isawaitable(answer) else answer
    await response(scope, receive_, send)
