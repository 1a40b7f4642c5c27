"""How values look on the pages: money, times, dispute deadlines. Pure functions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from babel.dates import format_timedelta

from merchant_backend import i18n
from merchant_backend.i18n import N_
from merchant_backend.money import currency as known_currency
from merchant_backend.money import format_amount

# How Stripe's and our own codes read on a page (statuses, states, reasons, checks). A code not
# listed reads as itself with spaces for underscores.
LABELS = {
    # PaymentIntent statuses
    "requires_payment_method": N_("requires payment method"),
    "requires_confirmation": N_("requires confirmation"),
    "requires_action": N_("requires action"),
    "processing": N_("processing"),
    "requires_capture": N_("requires capture"),
    "canceled": N_("canceled"),
    "succeeded": N_("succeeded"),
    # dispute statuses
    "warning_needs_response": N_("warning: needs response"),
    "warning_under_review": N_("warning: under review"),
    "warning_closed": N_("warning closed"),
    "needs_response": N_("needs response"),
    "under_review": N_("under review"),
    "won": N_("won"),
    "lost": N_("lost"),
    "prevented": N_("prevented"),
    # dispute reasons
    "bank_cannot_process": N_("bank cannot process"),
    "check_returned": N_("check returned"),
    "credit_not_processed": N_("credit not processed"),
    "customer_initiated": N_("customer initiated"),
    "debit_not_authorized": N_("debit not authorized"),
    "duplicate": N_("duplicate"),
    "fraudulent": N_("fraudulent"),
    "general": N_("general"),
    "incorrect_account_details": N_("incorrect account details"),
    "insufficient_funds": N_("insufficient funds"),
    "product_not_received": N_("product not received"),
    "product_unacceptable": N_("product unacceptable"),
    "subscription_canceled": N_("subscription canceled"),
    "unrecognized": N_("unrecognized"),
    # event states
    "pending": N_("pending"),
    "applied": N_("applied"),
    "ignored": N_("ignored"),
    "failed": N_("failed"),
    "dead": N_("dead"),
    # where an event came from
    "webhook": N_("webhook"),
    "reconcile": N_("reconcile"),
    # delivery states of outbound notifications (failed, pending: above)
    "retrying": N_("retrying"),
    "delivered": N_("delivered"),
    # connection health and checks
    "ok": N_("ok"),
    "warning": N_("warning"),
    "incomplete": N_("incomplete"),
    "unverified": N_("unverified"),
    "not_connected": N_("not connected"),
    "unknown": N_("unknown"),
    "key_modes": N_("key modes"),
    "secret_key_accepted": N_("secret key accepted"),
    "account_matches": N_("account matches"),
    "webhook_endpoint": N_("webhook endpoint"),
    "signing_secret_verified": N_("signing secret verified"),
    # capture methods
    "automatic": N_("automatic"),
    "automatic_async": N_("automatic (async)"),
    "manual": N_("manual"),
    # why a webhook was refused
    "bad_signature": N_("bad signature"),
    "missing_signature": N_("missing signature"),
    "malformed_signature": N_("malformed signature"),
    "no_signing_secret": N_("no signing secret"),
    "timestamp_out_of_tolerance": N_("timestamp out of tolerance"),
    "not_an_event": N_("not an event"),
    "unknown_env": N_("unknown environment"),
    "unknown_merchant": N_("unknown merchant"),
    "no_data_set": N_("no data set"),
}


def label(code: Any) -> str:
    """A code as a person reads it, in the reader's language: ``requires_capture`` →
    ``requires capture`` / ``Erfassung erforderlich``; '—' when there is none."""
    if not code:
        return "—"
    text = str(code)
    return i18n.gettext(LABELS[text]) if text in LABELS else text.replace("_", " ")


CLOSED_DISPUTE = frozenset({"won", "lost", "warning_closed", "prevented"})
DUE_SOON_SECONDS = 3 * 86400


def money(amount: Any, currency: Any) -> str:
    """Stripe's ``1234`` ``usd`` for the reader: ``US$12.34`` (English), ``12,34 $`` (German);
    a currency Stripe does not list as ``12.34 XYZ``; '—' when unknown."""
    if not isinstance(amount, int) or isinstance(amount, bool):
        return "—"
    code = str(currency or "").lower()
    known = known_currency(code)
    if known is not None:
        return format_amount(amount, known, i18n.reader().locale)
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 100)
    return f"{sign}{whole:,}.{frac:02d} {code.upper()}".strip()


def when(ts: Any) -> str:
    """A unix time in the reader's language and zone (``1 Dec 2026, 14:03 UTC``); '—' if none."""
    if not isinstance(ts, int | float) or isinstance(ts, bool):
        return "—"
    return i18n.when(ts)


def iso(ts: Any) -> str:
    """For ``<time datetime=…>``."""
    if not isinstance(ts, int | float) or isinstance(ts, bool):
        return ""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def ago(ts: Any, at: float) -> str:
    """``5 minutes ago`` / ``vor 5 Minuten``, or ``in 4 hours`` for the future."""
    if not isinstance(ts, int | float) or isinstance(ts, bool):
        return ""
    return str(
        format_timedelta(
            timedelta(seconds=ts - at),
            add_direction=True,
            threshold=1.5,
            locale=i18n.reader().locale,
        )
    )


def due_urgency(due_by: Any, status: Any, at: float) -> str | None:
    """``overdue`` or ``soon`` (under 3 days left) for a dispute that still needs an answer."""
    if not isinstance(due_by, int | float) or isinstance(due_by, bool) or status in CLOSED_DISPUTE:
        return None
    left = due_by - at
    if left < 0:
        return "overdue"
    if left < DUE_SOON_SECONDS:
        return "soon"
    return None


def day_label(day: int) -> str:
    """A day number since the epoch as ``05-01`` (month-day), for chart axes."""
    return datetime.fromtimestamp(day * 86400, UTC).strftime("%m-%d")


@dataclass(frozen=True)
class Failure:
    """Why something failed, as a page shows it (the ``failure`` macro): ``summary`` in the
    reader's language, ``detail`` the technical or Stripe's own text in English (empty when
    the summary says it all). Made by ``destination_messages`` and ``decline_messages``."""

    summary: str
    detail: str = ""
