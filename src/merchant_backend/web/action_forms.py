"""What the action forms send, turned into the store's and the Stripe helpers' inputs. Pure.

Each function returns the value or the ``FieldError``s to show beside the fields; the checks
that the store or the API already make stay there (a payment goes through the API's own body
model, a rolled secret through ``datasets.roll_signing_secret``).
"""

from __future__ import annotations

import re
import secrets

from pydantic import ValidationError

from merchant_backend import money
from merchant_backend.errors import FieldError
from merchant_backend.i18n import N_, gettext
from merchant_backend.services.datasets import MAX_ROLL_SECONDS
from merchant_backend.services.inputs import MerchantCreate, PaymentIntentBody
from merchant_backend.stripe.payments import NewPayment
from merchant_backend.validation import parse_ascii_int

_IDEMPOTENCY_KEY = re.compile(r"^web-[A-Za-z0-9_-]{16,64}$")

# Marked for the catalogue; translated where shown (N_ keeps the constant English).
PAYMENT_NOTICES = {
    "created": N_("The payment is created."),
    "captured": N_("The payment is captured."),
    "canceled": N_("The payment is canceled."),
}

# What to say when the API's body model refuses a field (its own messages name regexes).
PAYMENT_MESSAGES = {
    "currency": N_("Enter a three-letter currency code, such as usd or eur."),
    "customer": N_("A customer id looks like cus_… (or leave it empty)."),
    "payment_method": N_(
        "A payment method id looks like pm_… such as pm_card_visa (or leave it empty)."
    ),
    "capture_method": N_("Choose automatic or manual capture."),
    "description": N_("The description may have at most 1000 characters."),
}
UNKNOWN_CURRENCY = N_(
    "Stripe does not list %(code)s, so its decimals are unknown here: enter a currency Stripe "
    "charges in, such as usd or eur."
)


def new_idempotency_key() -> str:
    """One per form shown: sending the same form twice creates one payment, not two."""
    return "web-" + secrets.token_urlsafe(18)


def idempotency_key(submitted: str) -> str | None:
    """The form's key if it is one we could have made; else none (Stripe's helper makes one)."""
    submitted = submitted.strip()
    return submitted if _IDEMPOTENCY_KEY.match(submitted) else None


def old_valid_for(text: str) -> int | FieldError:
    """Seconds the old signing secret stays valid; blank means the maximum, as in the CLI."""
    text = text.strip()
    if not text:
        return MAX_ROLL_SECONDS
    seconds = parse_ascii_int(text)
    if seconds is None:
        return FieldError(
            "old_valid_for",
            gettext("Enter whole seconds from 0 to %(most)s (24 h).") % {"most": MAX_ROLL_SECONDS},
        )
    return seconds


def payment(form: dict[str, str], locale: str = "en") -> NewPayment | list[FieldError]:
    """A confirming PaymentIntent from the "New payment" form, validated as the API does.

    The amount is read for the page's locale by ``money.parse_amount`` (``12,50`` on a German
    page, ``12.50`` on an English one; anything that could be misread is refused with how to
    write it) into the minor units of a currency Stripe lists.
    """
    clean = {k: v.strip() for k, v in form.items()}
    code = clean.get("currency", "").lower()
    cur = money.currency(code)
    errors: list[FieldError] = []
    amount: int | None = None
    if cur is None and re.fullmatch(r"[a-z]{3}", code):
        errors.append(FieldError("currency", gettext(UNKNOWN_CURRENCY) % {"code": code.upper()}))
    elif cur is not None:
        read = money.parse_amount(clean.get("amount", ""), cur, locale)
        if isinstance(read, money.AmountRefused):
            errors.append(FieldError("amount", money.explain(read, gettext)))
        else:
            amount = read
    try:
        body = PaymentIntentBody(
            amount=amount if amount is not None else 1,
            currency=code,
            customer=clean.get("customer") or None,
            payment_method=clean.get("payment_method") or None,
            capture_method=clean.get("capture_method") or None,
            description=clean.get("description") or None,
            confirm=bool(clean.get("payment_method")),
        )
    except ValidationError as exc:
        fields = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
        errors += [
            FieldError(name, gettext(PAYMENT_MESSAGES[name]))
            for name in PAYMENT_MESSAGES
            if name in fields and not any(e.field == name for e in errors)
        ]
        return errors
    if errors or amount is None:
        return errors
    return NewPayment(
        amount=body.amount,
        currency=body.currency,
        customer=body.customer,
        payment_method=body.payment_method,
        capture_method=body.capture_method,
        description=body.description,
        confirm=body.confirm,
    )


def merchant_name(text: str) -> str | FieldError:
    """Checked by the API's create-merchant body (blank refused, at most 200 characters)."""
    try:
        return MerchantCreate(name=text).name
    except ValidationError:
        return FieldError("name", gettext("Enter the merchant's name (1 to 200 characters)."))
