"""Stripe's errors as messages that say what to do: never the key, never a traceback.

Every call to Stripe goes through ``StripeConnection.call`` (client.py), which turns any
``stripe.StripeError`` into an ``UpstreamFailure`` (``merchant_backend.errors``): what kind of
failure it was, our error code, what answered (Stripe's status, code and request id, the API
base) and a message for the merchant; each adapter decides how to show a kind. Stripe's own
message is only passed on where it is meant for people (a card decline, a rejected parameter),
and then through the redactor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import requests
import stripe

from merchant_backend.errors import UpstreamFailure
from merchant_backend.i18n import N_
from merchant_backend.logs import redact

# Stripe's 403 for a restricted key names the permission that would let the request through.
_PERMISSION = re.compile(r"'(rak_[a-z0-9_]+)'")
_STAGE_HINT = " (with the Dashboard in test mode)"


@dataclass(frozen=True)
class ErrorContext:
    """What a message may name: the account, environment, masked key and where we called."""

    account_id: str
    env: str
    key_hint: str
    api_base: str
    timeout: float
    retries: int


# What to do about a failed Stripe call, by code (``advice_code``): the API's English words,
# marked for the catalogue, which pages say in their reader's language (failure_report.py).
ADVICE = {
    "later": N_("try again later; if it persists check https://status.stripe.com"),
    "unreachable": N_(
        "nothing answered at %(api_base)s: check the network, and "
        "MERCHANT_BACKEND_STRIPE_API_BASE if it is set"
    ),
    "no_endpoint": N_(
        "there is no such endpoint at %(api_base)s: MERCHANT_BACKEND_STRIPE_API_BASE may be "
        "wrong (unset it to use Stripe's own, https://api.stripe.com), or the Stripe at that "
        "address (a mock or fake) lacks this endpoint"
    ),
    "key_rejected": N_(
        "the secret key was rejected: copy it again from Developers → API keys and save it "
        "in the data set"
    ),
    "permission": N_(
        "the key may not do this: grant the restricted key the permission under Developers "
        "→ API keys → the key → Edit, or use the standard secret key"
    ),
    "rate_limited": N_("Stripe is limiting the request rate: try again later"),
    "refused": N_("Stripe refused the request as sent: see its message"),
}


def advice_code(status: int | None, code: str) -> str:
    """What to do about a failed Stripe call, by what answered (a key of ``ADVICE``). Pure.

    404: the address is wrong or the Stripe there lacks the endpoint (a mock, an old fake);
    401/403: the key; 429 and 5xx: Stripe is busy or failing, so later; nothing answered: the
    network or the address.
    """
    if status is None:
        return "later" if code == "stripe_timeout" else "unreachable"
    if status == 404:
        return "no_endpoint"
    if status == 401:
        return "key_rejected"
    if status == 403:
        return "permission"
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "later"
    return "refused"


def advice(status: int | None, code: str, api_base: str) -> str:
    """``advice_code``'s words, naming the API base we called."""
    return ADVICE[advice_code(status, code)] % {"api_base": api_base}


def permission_named(message: str | None) -> str | None:
    found = _PERMISSION.search(message or "")
    return found.group(1) if found else None


def is_replay(headers: Any) -> bool:
    """Did Stripe answer from its idempotency store (``Idempotent-Replayed: true``)?"""
    if not headers:
        return False
    return any(
        str(k).lower() == "idempotent-replayed" and str(v).lower() == "true"
        for k, v in dict(headers).items()
    )


def _tried(retries: int) -> str:
    return "tried once" if retries == 0 else f"tried {retries + 1} times"


def _request_suffix(exc: stripe.StripeError) -> str:
    return f" (Stripe request {exc.request_id})" if exc.request_id else ""


def _is_timeout(exc: BaseException) -> bool:
    cause = exc.__cause__
    return isinstance(cause, requests.exceptions.Timeout) or "timed out" in str(cause or "")


def _error_body(exc: stripe.StripeError) -> dict[str, Any]:
    body = exc.json_body
    err = body.get("error") if isinstance(body, dict) else None
    return err if isinstance(err, dict) else {}


def _stripe_message(exc: stripe.StripeError) -> str:
    return redact(exc.user_message or "")[:500]


def problem_from(exc: stripe.StripeError, ctx: ErrorContext, action: str) -> UpstreamFailure:
    """Map one SDK error; ``action`` completes "while trying to …" (e.g. "read the account")."""
    acct = ctx.account_id
    mode_hint = _STAGE_HINT if ctx.env == "stage" else ""
    suffix = _request_suffix(exc)
    common: dict[str, Any] = {
        "request_id": exc.request_id,
        "stripe_code": exc.code,
        "replayed": is_replay(exc.headers),
        "stripe_status": exc.http_status,
        "api_base": ctx.api_base,
    }

    if isinstance(exc, stripe.CardError):
        err = _error_body(exc)
        pi = err.get("payment_intent")
        decline = err.get("decline_code")
        return UpstreamFailure(
            "declined",
            exc.code or "card_declined",
            _stripe_message(exc) or "The card was declined.",
            decline_code=decline if isinstance(decline, str) else None,
            param=exc.param,
            payment_intent=pi if isinstance(pi, dict) else None,
            **common,
        )
    if isinstance(exc, stripe.AuthenticationError):
        return UpstreamFailure(
            "key_rejected",
            "stripe_key_rejected",
            f"Stripe rejected the secret key for {acct} ({ctx.key_hint}): copy it again from "
            f"Developers → API keys{mode_hint} and save it in the {ctx.env} data set{suffix}",
            **common,
        )
    if isinstance(exc, stripe.PermissionError):
        permission = permission_named(exc.user_message)
        grant = f"the '{permission}' permission" if permission else "the permission it lacks"
        return UpstreamFailure(
            "permission_denied",
            "stripe_permission_denied",
            f"the restricted key {ctx.key_hint} for {acct} may not {action}: grant it {grant} "
            f"under Developers → API keys → the key → Edit, or use the standard secret key"
            f"{suffix}",
            extra={"permission": permission},
            **common,
        )
    if isinstance(exc, stripe.RateLimitError):
        return UpstreamFailure(
            "rate_limited",
            "stripe_rate_limited",
            f"Stripe is limiting the request rate for {acct} and still did after "
            f"{ctx.retries} retries while trying to {action}: try again in a few seconds{suffix}",
            **common,
        )
    if isinstance(exc, stripe.APIConnectionError):
        if _is_timeout(exc):
            return UpstreamFailure(
                "timeout",
                "stripe_timeout",
                f"Stripe did not answer within {ctx.timeout:g} s while trying to {action} "
                f"({_tried(ctx.retries)}): try again; if it persists check "
                "https://status.stripe.com",
                api_base=ctx.api_base,
            )
        return UpstreamFailure(
            "unreachable",
            "stripe_unreachable",
            f"could not reach Stripe at {ctx.api_base} to {action} ({_tried(ctx.retries)}): "
            "check the network and MERCHANT_BACKEND_STRIPE_API_BASE",
            api_base=ctx.api_base,
        )
    if isinstance(exc, stripe.IdempotencyError):
        return UpstreamFailure(
            "idempotency_conflict",
            "idempotency_key_reused",
            "this Idempotency-Key was already used with other parameters: send a new key for "
            f"a new request{suffix}",
            **common,
        )
    if isinstance(exc, stripe.InvalidRequestError):
        missing = exc.http_status == 404
        if missing and exc.code != "resource_missing":
            # Not an object that is missing but the endpoint: the wrong address, or a Stripe
            # (a mock) that lacks it. Our request was fine, so it is an upstream failure.
            return UpstreamFailure(
                "endpoint_missing",
                "stripe_endpoint_missing",
                f"{ctx.api_base} answered HTTP 404 while trying to {action} "
                f"({_stripe_message(exc) or 'not found'}): "
                f"{advice(404, 'stripe_endpoint_missing', ctx.api_base)}{suffix}",
                **common,
            )
        return UpstreamFailure(
            "not_found" if missing else "invalid_request",
            "stripe_not_found" if missing else "stripe_invalid_request",
            f"Stripe refused to {action}: {_stripe_message(exc) or 'invalid request'}{suffix}",
            param=exc.param,
            **common,
        )
    status = exc.http_status
    # Stripe's own message when the body is Stripe's error shape, not the SDK's dump of a body
    # from something else.
    detail = redact(str(_error_body(exc).get("message") or ""))[:300]
    what = f"HTTP {status}" if status else "an error"
    return UpstreamFailure(
        "error",
        "stripe_error",
        f"{ctx.api_base} answered with {what} while trying to {action}"
        f"{f' ({detail})' if detail else ''}: {advice(status, 'stripe_error', ctx.api_base)}"
        f"{suffix}",
        **common,
    )
