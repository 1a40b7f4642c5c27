"""Web actions that wait on Stripe run like the API's: in the Stripe bulkhead, on its own
threads, never in the thread pool that the other pages, sign-in and webhooks use.

Past the merchant's or the process's bound the browser gets, at once, a page that says so
(429 with ``Retry-After``) and that nothing was done, instead of a page that hangs behind
another merchant's requests.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Response

from merchant_backend.errors import Busy
from merchant_backend.i18n import gettext as _
from merchant_backend.services import stripe_work
from merchant_backend.web.render import WebError
from merchant_backend.web.session import MerchantPage


async def run(mp: MerchantPage, page: Callable[..., Response], *args: Any) -> Response:
    """``page(*args)`` (a blocking page handler) in the Stripe bulkhead of ``mp``'s merchant."""
    try:
        return await stripe_work.run(mp.rt, mp.merchant.id, page, *args)
    except Busy as exc:
        raise WebError(
            429,
            _("Too busy: try again in a moment"),
            _(
                "Nothing was sent to Stripe: this merchant (or this service) already has as many "
                "requests waiting on Stripe as it may. Try again in %(seconds)s seconds."
            )
            % {"seconds": exc.retry_after},
            headers={"Retry-After": str(exc.retry_after)},
        ) from None
