"""Why a card was declined, in the page's language.

Stripe words a decline for the cardholder, in English ("Your card has insufficient funds.").
An English page shows Stripe's own words. Other languages show a sentence chosen by Stripe's
documented ``decline_code`` (else the error's ``code``), with Stripe's words beside it: a code
listed here is one of Stripe's own (docs.stripe.com/declines/codes); any other is shown as
Stripe wrote it.
"""

from __future__ import annotations

from typing import Any

from merchant_backend import i18n
from merchant_backend.i18n import N_, gettext
from merchant_backend.web.format import Failure

_DECLINED = N_("The card was declined.")
DECLINES = {
    "card_declined": _DECLINED,
    "generic_decline": _DECLINED,
    "do_not_honor": _DECLINED,
    "fraudulent": _DECLINED,
    "lost_card": _DECLINED,
    "stolen_card": _DECLINED,
    "pickup_card": _DECLINED,
    "insufficient_funds": N_("The card has insufficient funds."),
    "expired_card": N_("The card has expired."),
    "incorrect_cvc": N_("The card's security code is incorrect."),
    "invalid_cvc": N_("The card's security code is incorrect."),
    "incorrect_number": N_("The card number is incorrect."),
    "invalid_number": N_("The card number is incorrect."),
    "invalid_expiry_month": N_("The card's expiry date is invalid."),
    "invalid_expiry_year": N_("The card's expiry date is invalid."),
    "processing_error": N_("An error occurred while processing the card: try again shortly."),
    "card_not_supported": N_("The card does not support this kind of purchase."),
    "currency_not_supported": N_("The card does not support this currency."),
    "card_velocity_exceeded": N_("The card's limit is reached."),
    "authentication_required": N_("The card's bank wants the payment authenticated (3D Secure)."),
}


def decline(message: str | None, code: str | None, decline_code: str | None) -> Failure:
    """A decline as a page shows it: ``summary`` in the reader's language, ``detail`` Stripe's
    own words when the summary is not them."""
    said = message or ""
    known = DECLINES.get(decline_code or "") or DECLINES.get(code or "")
    if i18n.reader().language == "en" or known is None:
        return Failure(said or gettext(_DECLINED))
    return Failure(gettext(known), said)


def payment_error(error: Any) -> Failure:
    """A PaymentIntent's ``last_payment_error`` (Stripe's error object) for the page."""
    if not isinstance(error, dict):
        return Failure("")
    return decline(error.get("message"), error.get("code"), error.get("decline_code"))
