"""List pages: filters from the query string, Stripe-style cursors, and the pager's links."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from merchant_backend.errors import UnknownCursor
from merchant_backend.i18n import gettext as _
from merchant_backend.services import reads
from merchant_backend.services.reads import StoredObject
from merchant_backend.web.render import WebError
from merchant_backend.web.session import MerchantPage

PAGE_SIZE = 25
# Where each kind of object has its pages (an event links to its object).
OBJECT_PAGES = {"payment_intent": "payments", "dispute": "disputes", "customer": "customers"}


def opt(value: str | None, limit: int = 255) -> str | None:
    """A filter from the query string: blank means none, overlong is cut."""
    value = (value or "").strip()
    return value[:limit] or None


def bad_cursor() -> WebError:
    return WebError(
        400, _("That page is gone"), _("The list changed since this link was made: start again.")
    )


def _next_link(base: str, filters: dict[str, str | None], last_id: str | None) -> str | None:
    if last_id is None:
        return None
    query = {k: v for k, v in filters.items() if v}
    query["starting_after"] = last_id
    return f"{base}?{urlencode(query)}"


def paging(
    base: str, filters: dict[str, str | None], starting_after: str | None, next_id: str | None
) -> dict[str, Any]:
    """The pager of a list page: whether this is a later page, and links to the first and next."""
    first = f"{base}?{urlencode({k: v for k, v in filters.items() if v})}" if filters else base
    return {
        "paged": bool(starting_after),
        "first_link": first,
        "next_link": _next_link(base, filters, next_id),
    }


def object_page(
    mp: MerchantPage,
    object_type: str,
    starting_after: str | None,
    status: str | None = None,
    customer_id: str | None = None,
) -> tuple[list[StoredObject], bool]:
    try:
        return reads.list_objects(
            mp.rt,
            mp.merchant.id,
            mp.env,
            object_type,
            limit=PAGE_SIZE,
            starting_after=opt(starting_after),
            status=status,
            customer_id=customer_id,
        )
    except UnknownCursor:
        raise bad_cursor() from None


def last_id(items: list[StoredObject], more: bool) -> str | None:
    return items[-1].stripe_id if more and items else None


def object_href(base: str, object_type: str | None, object_id: str | None) -> str | None:
    section = OBJECT_PAGES.get(object_type or "")
    return f"{base}/{section}/{object_id}" if section and object_id else None
