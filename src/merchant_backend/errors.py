"""What went wrong, said neutrally: the domain's errors.

These say what happened and carry what an adapter needs to show it; they never carry an HTTP
status, a page or an exit code. Each adapter maps them once (``api/errors.py``,
``web/render.py``, ``cli/errors.py``), exactly as the contract says. Add a new error type here,
and its mapping in each adapter.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, Self


class DomainError(Exception):
    """A failure a user can be told about; ``code`` is the API's machine code.

    ``message`` is English (the API and CLI show it). Where it was written from a ``template``
    (an English text marked ``N_`` where it is defined) and ``values``, both are kept, so a web
    page can say the same in its reader's language (``web/domain_messages.py``); ``of`` makes
    such an error.
    """

    code: str = "error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        template: str | None = None,
        values: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.template = template
        self.values = values or {}

    @classmethod
    def of(cls, template: str, values: dict[str, Any] | None = None, **kwargs: Any) -> Self:
        """The error whose message is ``template`` filled with ``values``."""
        return cls(template % (values or {}), template=template, values=values, **kwargs)

    def __str__(self) -> str:
        return self.message


class NotFound(DomainError):
    """The thing asked for does not exist (or is not the caller's to see)."""

    code = "not_found"


class Conflict(DomainError):
    """The action clashes with the current state (e.g. another reconcile holds the lease).

    ``extra`` goes into the API's error body beside code and message (e.g. ``retry_after``).
    """

    code = "conflict"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
        template: str | None = None,
        values: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, code=code, template=template, values=values)
        self.extra = extra or {}


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str
    # As on DomainError: the template the message was written from, and its values.
    template: str | None = None
    values: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def of(cls, name: str, template: str, values: dict[str, Any]) -> FieldError:
        return cls(name, template % values, template, values)


class InvalidInput(DomainError):
    """Input that breaks a rule: one message per field, all at once."""

    code = "invalid_request"

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors

    @classmethod
    def one(cls, field_name: str, message: str) -> InvalidInput:
        return cls([FieldError(field_name, message)])


class UnknownCursor(DomainError):
    """A list's ``starting_after`` names nothing in that list (it changed, or it never did)."""

    code = "invalid_request"

    def __init__(self, cursor: str) -> None:
        super().__init__(f"starting_after {cursor!r} is not in this list")
        self.cursor = cursor


class Unavailable(DomainError):
    """We cannot do it right now (the database is away, a queue is full); try again."""

    code = "unavailable"


class NotAuthenticated(DomainError):
    """The credential (API token, admin token) is missing or not valid."""

    code = "unauthorized"


class AccessDisabled(DomainError):
    """The credential is right, but the operator has turned this merchant's access off."""

    code = "merchant_disabled"


class RateLimited(DomainError):
    """Too many of these from this caller just now; ``retry_after`` says when to try again
    (whole seconds, at least 1). Adapters answer 429 with ``Retry-After``."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = max(1, int(retry_after))


class Busy(RateLimited):
    """A concurrency limit is full (e.g. this merchant's requests waiting on Stripe): refused
    at once rather than queued behind others."""

    code = "busy"


class NotConfigured(DomainError):
    """The settings do not allow the action; ``setting`` names the variable to change."""

    code = "not_configured"

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting


# What Stripe's answer (or its absence) meant; each adapter has one table for these.
UpstreamKind = Literal[
    "declined",  # a card decline (Stripe's 402)
    "key_rejected",  # Stripe refused our secret key
    "permission_denied",  # a restricted key lacks a permission
    "rate_limited",  # Stripe still limited us after our retries
    "timeout",  # no answer in time
    "unreachable",  # no connection
    "idempotency_conflict",  # an Idempotency-Key reused with other parameters
    "not_found",  # Stripe has no such object
    "invalid_request",  # Stripe refused the parameters
    "endpoint_missing",  # the API base answers 404 for the endpoint itself (wrong address)
    "insecure_base",  # we refused to send a live key to a plain-http API base
    "error",  # any other error answer
]


@dataclass(eq=False)
class UpstreamFailure(Exception):
    """Stripe said no, or could not be asked. ``message`` is written for the merchant."""

    kind: UpstreamKind
    code: str
    message: str
    # Stripe's own HTTP status (None when there was no answer) and error code.
    stripe_status: int | None = None
    stripe_code: str | None = None
    request_id: str | None = None
    api_base: str | None = None
    decline_code: str | None = None
    param: str | None = None
    # Stripe answered with the saved result of an earlier request with the same key.
    replayed: bool = False
    # Stripe attaches the failed PaymentIntent to a decline; we keep it to sync it.
    payment_intent: dict[str, Any] | None = None
    # More for the API's error body (e.g. the permission a restricted key lacks).
    extra: dict[str, Any] = field(default_factory=dict)
    # The call that failed (``account.retrieve``), set by the client.
    operation: str | None = None
    # The report a verify or a webhook provisioning stored about this failure.
    report: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class EventRejected(Exception):
    """A delivery or a listed event we do not take: a bad signature, not an event, another
    account's or mode's event. ``reason`` is short and machine-readable (metrics, the
    rejections table, the webhook's error code); the message never carries a secret."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
