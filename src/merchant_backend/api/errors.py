"""One error shape everywhere: ``{"error": {"code", "message", "field"}}``.

The API's one mapping of the domain's errors (``merchant_backend.errors``) to statuses.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from merchant_backend import logs
from merchant_backend.crypto import DecryptionError
from merchant_backend.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    RateLimited,
    Unavailable,
    UnknownCursor,
    UpstreamFailure,
    UpstreamKind,
)
from merchant_backend.validation import hide_secrets

log = logs.get("merchant_backend.api")


class FieldMessage(BaseModel):
    field: str | None
    message: str


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")  # e.g. stripe_request_id, decline_code, retry_after

    code: str
    message: str
    field: str | None = None
    errors: list[FieldMessage] | None = None


class ErrorBody(BaseModel):
    """Every error answer of the API: ``{"error": {"code", "message", "field"}}``."""

    error: ErrorDetail


# Documented on every API route (the OpenAPI document says what an error looks like, so a
# client, and schemathesis, can check it). 422 replaces FastAPI's own validation error shape.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "The request is malformed (e.g. an unknown pagination cursor).",
        401: "No valid API token.",
        403: "The token may not do this (e.g. it is not the admin token).",
        404: "No such merchant, data set or object (or not this token's to see).",
        409: "The action clashes with the current state (e.g. a reconcile already runs).",
        413: "The body is too large.",
        422: "A field breaks a rule; one message per field.",
        429: "Too many requests; see Retry-After.",
        502: "Stripe refused or could not be reached; the message says what to do.",
        503: "The database or Stripe is unavailable right now; try again.",
        504: "Stripe did not answer in time.",
    }.items()
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.errors = errors


def error_body(
    code: str,
    message: str,
    field: str | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    # Nothing shaped like a secret is ever shown back, whatever a message quotes (issue 9).
    body: dict[str, Any] = {"code": code, "message": hide_secrets(message), "field": field}
    if errors:
        body["errors"] = [
            {**e, "message": hide_secrets(e["message"])} if isinstance(e.get("message"), str) else e
            for e in errors
        ]
    return {"error": body}


def not_found(what: str = "not found") -> ApiError:
    return ApiError(404, "not_found", what)


def from_validation(exc: InvalidInput) -> ApiError:
    errors = [{"field": e.field, "message": e.message} for e in exc.errors]
    first = exc.errors[0]
    return ApiError(422, "invalid_request", first.message, first.field, errors)


# What Stripe's failure means for our answer: a decline is the client's 402, Stripe refusing
# our key or failing is a bad gateway (never the client's 401/403), a limit we still hit after
# retrying is 503, no answer in time 504; what the client can fix keeps Stripe's 4xx.
UPSTREAM_STATUS: dict[UpstreamKind, int] = {
    "declined": 402,
    "key_rejected": 502,
    "permission_denied": 502,
    "rate_limited": 503,
    "timeout": 504,
    "unreachable": 502,
    "idempotency_conflict": 409,
    "not_found": 404,
    "invalid_request": 400,
    "endpoint_missing": 502,
    "insecure_base": 502,
    "error": 502,
}


def upstream_status(exc: UpstreamFailure) -> int:
    return UPSTREAM_STATUS[exc.kind]


def upstream_body(exc: UpstreamFailure) -> dict[str, Any]:
    """The API's error shape, plus what a checkout page needs after a decline and what
    answered (Stripe's status, the API base when it failed, the stored report)."""
    err: dict[str, Any] = {"code": exc.code, "message": exc.message, "field": exc.param}
    if exc.stripe_code is not None:
        err["stripe_code"] = exc.stripe_code
    if exc.kind == "declined":
        err["decline_code"] = exc.decline_code
    if exc.request_id is not None:
        err["stripe_request_id"] = exc.request_id
    if exc.stripe_status is not None:
        err["stripe_status"] = exc.stripe_status
    if exc.api_base is not None and upstream_status(exc) >= 500:
        err["api_base"] = exc.api_base
    err.update(exc.extra)
    if exc.report is not None:
        err["report"] = exc.report
    return {"error": err}


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal_error",
    502: "bad_gateway",
    503: "unavailable",
    504: "gateway_timeout",
}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(
            error_body(exc.code, exc.message, exc.field, exc.errors), exc.status, headers=headers
        )

    @app.exception_handler(RateLimited)
    async def _rate_limited(_request: Request, exc: RateLimited) -> JSONResponse:
        # Busy (a full bulkhead) is one too: refused at once, never queued.
        body = error_body(exc.code, exc.message)
        body["error"]["retry_after"] = exc.retry_after
        return JSONResponse(body, 429, headers={"Retry-After": str(exc.retry_after)})

    @app.exception_handler(InvalidInput)
    async def _validation(_request: Request, exc: InvalidInput) -> JSONResponse:
        err = from_validation(exc)
        return JSONResponse(error_body(err.code, err.message, err.field, err.errors), 422)

    @app.exception_handler(NotFound)
    async def _not_found(_request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), 404)

    @app.exception_handler(Conflict)
    async def _conflict(_request: Request, exc: Conflict) -> JSONResponse:
        body = error_body(exc.code, exc.message)
        body["error"].update(exc.extra)
        return JSONResponse(body, 409)

    @app.exception_handler(UnknownCursor)
    async def _cursor(_request: Request, exc: UnknownCursor) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, "starting_after"), 400)

    @app.exception_handler(Unavailable)
    async def _unavailable(_request: Request, exc: Unavailable) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), 503)

    @app.exception_handler(UpstreamFailure)
    async def _upstream(_request: Request, exc: UpstreamFailure) -> JSONResponse:
        return JSONResponse(upstream_body(exc), upstream_status(exc))

    @app.exception_handler(RequestValidationError)
    async def _request_validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for e in exc.errors():
            loc = [str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path")]
            # Pydantic's message only; never its "input", which may be a secret.
            errors.append({"field": ".".join(loc) or None, "message": str(e.get("msg"))})
        first = errors[0] if errors else {"field": None, "message": "invalid request"}
        return JSONResponse(
            error_body("invalid_request", first["message"] or "", first["field"], errors), 422
        )

    @app.exception_handler(DataError)
    async def _unstorable(_request: Request, exc: DataError) -> JSONResponse:
        # The database refused a value as data (too long, out of range, a NUL): the request's
        # doing, so a 400, never a 500. The inputs are checked before; this is the safety net.
        log.warning("database refused a value", error=type(exc.orig).__name__)
        return JSONResponse(
            error_body("invalid_request", "a value in the request cannot be stored"), 400
        )

    @app.exception_handler(DecryptionError)
    async def _secret_unreadable(_request: Request, exc: DecryptionError) -> JSONResponse:
        # The message names the field and row, never the value; an operator must act.
        log.error("stored secret unreadable", detail=str(exc))
        return JSONResponse(error_body("secret_unreadable", str(exc)), 500)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        # Starlette logs the traceback (through the redacting log setup); the client gets the
        # same JSON shape as every other error, without internals that could carry data.
        return JSONResponse(
            error_body("internal_error", "internal error; the operator's log has the details"),
            500,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=exc.headers)
