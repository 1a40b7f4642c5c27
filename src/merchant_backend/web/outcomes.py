"""How an action's failure shows on a page: its text and the page's status code.

The web pages' one mapping of the domain's errors (``merchant_backend.errors``): a refused
setting or input is the merchant's to fix (422), a conflict is 409, a decline or a refused
request keeps Stripe's meaning (402, 404, 400, 409), Stripe refusing our key is an upstream
failure (502, never the browser's 401/403), anything else 502.
"""

from __future__ import annotations

from merchant_backend import i18n, logs
from merchant_backend.errors import Conflict, DomainError, InvalidInput, UpstreamFailure
from merchant_backend.i18n import N_
from merchant_backend.i18n import gettext as _
from merchant_backend.services.datasets import StoredDataSet, get_data_set
from merchant_backend.web import decline_messages
from merchant_backend.web.domain_messages import said
from merchant_backend.web.format import Failure
from merchant_backend.web.render import WebError
from merchant_backend.web.session import MerchantPage

log = logs.get("merchant_backend.web")

UPSTREAM_STATUS = {
    "declined": 402,
    "rate_limited": 503,
    "timeout": 504,
    "idempotency_conflict": 409,
    "not_found": 404,
    "invalid_request": 400,
}


# What a failed Stripe call means, by its kind, for readers of another language than English:
# the message written for the merchant (what was tried, what answered, Stripe's request id)
# follows in English, in parentheses. English pages show that message alone.
UPSTREAM = {
    "key_rejected": N_(
        "Stripe rejected the secret key: copy it again from Developers → API keys and save it "
        "in the data set"
    ),
    "permission_denied": N_(
        "the restricted key lacks a permission for this: grant it under Developers → API keys "
        "→ the key → Edit, or use the standard secret key"
    ),
    "rate_limited": N_("Stripe is limiting the request rate: try again in a few seconds"),
    "timeout": N_(
        "Stripe did not answer in time: try again; if it persists, see status.stripe.com"
    ),
    "unreachable": N_(
        "Stripe could not be reached: check the network and MERCHANT_BACKEND_STRIPE_API_BASE"
    ),
    "idempotency_conflict": N_(
        "this Idempotency-Key was already used with other parameters: send a new key"
    ),
    "not_found": N_("Stripe does not know this object"),
    "invalid_request": N_("Stripe refused the request as sent"),
    "endpoint_missing": N_(
        "the Stripe API address has no such endpoint: check MERCHANT_BACKEND_STRIPE_API_BASE"
    ),
    "insecure_base": N_("a live key is only ever sent to an https:// Stripe API address"),
    "error": N_("Stripe answered with an error"),
}


def upstream_failure(exc: UpstreamFailure) -> Failure:
    """A failed Stripe call as the page says it (see ``UPSTREAM``): what it means in the
    reader's language, and the English message with the facts beside it."""
    if exc.kind == "declined":
        return decline_messages.decline(exc.message, exc.code, exc.decline_code)
    meaning = UPSTREAM.get(exc.kind)
    if meaning is None or i18n.reader().language == "en":
        return Failure(exc.message)
    return Failure(_(meaning), exc.message)


def problem_of(exc: Exception, what: str, mp: MerchantPage) -> Failure:
    """Stripe's failures and rejected settings carry messages written for the merchant (never
    a key); anything else is a bug, named only by its kind here and logged in full. The log
    gets the English message, whatever the page's language."""
    if isinstance(exc, InvalidInput):
        failure = Failure("; ".join(said(e.template, e.values, e.message) for e in exc.errors))
        english = "; ".join(e.message for e in exc.errors)
    elif isinstance(exc, UpstreamFailure):
        failure, english = upstream_failure(exc), exc.message
    elif isinstance(exc, DomainError):
        failure, english = Failure(said(exc.template, exc.values, exc.message)), exc.message
    else:
        log.exception(f"web {what} failed", merchant_id=mp.merchant.id, env=mp.env)
        return Failure(
            _("an unexpected error (%(kind)s); the server log has the details")
            % {"kind": type(exc).__name__}
        )
    log.warning(f"web {what} failed", merchant_id=mp.merchant.id, env=mp.env, error=english)
    return failure


def failure_status(exc: Exception) -> int:
    """The page's status for a failed action (see the module's docstring)."""
    if isinstance(exc, InvalidInput):
        return 422
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, UpstreamFailure):
        return UPSTREAM_STATUS.get(exc.kind, 502)
    return 502


def stored_of(mp: MerchantPage) -> StoredDataSet | None:
    return get_data_set(mp.rt, mp.merchant.id, mp.env)


def needs_data_set(mp: MerchantPage) -> StoredDataSet:
    """The environment's data set; an action without one answers 409 with what to do."""
    stored = stored_of(mp)
    if stored is None:
        raise WebError(
            409, _("No data set yet"), _("Save the Stripe data set of this environment first.")
        )
    return stored
