"""How an action's failure shows on a page: its text and the page's status code.

The web pages' one mapping of the domain's errors (``merchant_backend.errors``): a refused
setting or input is the merchant's to fix (422), a conflict is 409, a decline or a refused
request keeps Stripe's meaning (402, 404, 400, 409), Stripe refusing our key is an upstream
failure (502, never the browser's 401/403), anything else 502.
"""

from __future__ import annotations

from merchant_backend import logs
from merchant_backend.errors import Conflict, DomainError, InvalidInput, UpstreamFailure
from merchant_backend.i18n import gettext as _
from merchant_backend.services.datasets import StoredDataSet, get_data_set
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


def problem_text(exc: Exception, what: str, mp: MerchantPage) -> str:
    """Stripe's failures and rejected settings carry messages written for the merchant (never
    a key); anything else is a bug, named only by its kind here and logged in full."""
    if isinstance(exc, InvalidInput):
        text = "; ".join(e.message for e in exc.errors)
    elif isinstance(exc, UpstreamFailure | DomainError):
        text = exc.message
    else:
        log.exception(f"web {what} failed", merchant_id=mp.merchant.id, env=mp.env)
        return _("an unexpected error (%(kind)s); the server log has the details") % {
            "kind": type(exc).__name__
        }
    log.warning(f"web {what} failed", merchant_id=mp.merchant.id, env=mp.env, error=text)
    return text


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
