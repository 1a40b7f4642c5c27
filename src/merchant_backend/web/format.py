"""How values look on the pages: money, times, dispute deadlines. Pure functions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from merchant_backend.money import currency as known_currency

CLOSED_DISPUTE = frozenset({"won", "lost", "warning_closed", "prevented"})
DUE_SOON_SECONDS = 3 * 86400


def decimals(currency: str) -> int:
    """How many digits Stripe's smallest unit of the currency has (``money.CURRENCIES``)."""
    known = known_currency(currency)
    return known.exponent if known else 2


def money(amount: Any, currency: Any) -> str:
    """``12.34 USD`` from Stripe's ``1234`` and ``usd``; '—' when unknown."""
    if not isinstance(amount, int) or isinstance(amount, bool):
        return "—"
    code = str(currency or "").lower()
    digits = decimals(code)
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**digits)
    text = f"{whole:,}" + (f".{frac:0{digits}d}" if digits else "")
    return f"{sign}{text} {code.upper()}".strip()


def when(ts: Any) -> str:
    """A unix time as ``2026-05-01 14:03 UTC``; '—' when missing."""
    if not isinstance(ts, int | float) or isinstance(ts, bool):
        return "—"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def iso(ts: Any) -> str:
    """For ``<time datetime=…>``."""
    if not isinstance(ts, int | float) or isinstance(ts, bool):
        return ""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def ago(ts: Any, at: float) -> str:
    """``5 min ago``, ``3 h ago``, ``2 days ago``, or ``in 4 h`` for the future."""
    if not isinstance(ts, int | float) or isinstance(ts, bool):
        return ""
    delta = at - ts
    future = delta < 0
    delta = abs(delta)
    if delta < 60:
        text = "less than a minute"
    elif delta < 3600:
        text = f"{int(delta // 60)} min"
    elif delta < 2 * 86400:
        text = f"{int(delta // 3600)} h"
    else:
        text = f"{int(delta // 86400)} days"
    return f"in {text}" if future else f"{text} ago"


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
