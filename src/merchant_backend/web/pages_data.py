"""Overview, payments, disputes, customers and events of one merchant and environment."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter, Depends, Form, Request, Response

from merchant_backend import clock, logs
from merchant_backend.store import (
    datasets,
    db,
    inbox,
    objects,
    reconcile_state,
    rejections,
    stats,
    timeline,
)
from merchant_backend.store.web_sessions import WebSession
from merchant_backend.sync.handlers import dispute_funds
from merchant_backend.vocabulary import (
    CANCELABLE,
    CAPTURABLE,
    DISPUTE_STATUSES,
    HANDLED_EVENTS,
    INBOX_STATES,
    PAYMENT_INTENT_STATUSES,
)
from merchant_backend.web import action_forms
from merchant_backend.web import format as fmt
from merchant_backend.web.chart import bar_chart
from merchant_backend.web.layout import merchant_frame
from merchant_backend.web.render import WebError, WebRoute, not_found, page, redirect
from merchant_backend.web.session import MerchantPage, merchant_form, merchant_page, require_session
from merchant_backend.web.stripe_form import report_is_stale

log = logs.get("merchant_backend.web")
router = APIRouter(route_class=WebRoute, include_in_schema=False)

PAGE_SIZE = 25
CHART_DAYS = 14
# Entries that may be put back in line from the events page.
REPLAYABLE = frozenset({"dead", "failed", "applied"})
OBJECT_PAGES = {"payment_intent": "payments", "dispute": "disputes", "customer": "customers"}


def _opt(value: str | None, limit: int = 255) -> str | None:
    """A filter from the query string: blank means none, overlong is cut."""
    value = (value or "").strip()
    return value[:limit] or None


def _bad_cursor() -> WebError:
    return WebError(
        400, "That page is gone", "The list changed since this link was made: start again."
    )


def _next_link(base: str, filters: dict[str, str | None], last_id: str | None) -> str | None:
    if last_id is None:
        return None
    query = {k: v for k, v in filters.items() if v}
    query["starting_after"] = last_id
    return f"{base}?{urlencode(query)}"


def _paging(
    base: str, filters: dict[str, str | None], starting_after: str | None, next_id: str | None
) -> dict[str, Any]:
    """The pager of a list page: whether this is a later page, and links to the first and next."""
    first = f"{base}?{urlencode({k: v for k, v in filters.items() if v})}" if filters else base
    return {
        "paged": bool(starting_after),
        "first_link": first,
        "next_link": _next_link(base, filters, next_id),
    }


def _object_page(
    mp: MerchantPage,
    object_type: str,
    starting_after: str | None,
    status: str | None = None,
    customer_id: str | None = None,
) -> tuple[list[objects.StoredObject], bool]:
    with db.read(mp.rt.engine) as conn:
        try:
            return objects.list_page(
                conn,
                mp.merchant.id,
                mp.env,
                object_type,
                limit=PAGE_SIZE,
                starting_after=_opt(starting_after),
                status=status,
                customer_id=customer_id,
            )
        except LookupError:
            raise _bad_cursor() from None


def _last_id(items: list[objects.StoredObject], more: bool) -> str | None:
    return items[-1].stripe_id if more and items else None


def object_href(base: str, object_type: str | None, object_id: str | None) -> str | None:
    section = OBJECT_PAGES.get(object_type or "")
    return f"{base}/{section}/{object_id}" if section and object_id else None


# ---------------------------------------------------------------- overview


@router.get("/m/{merchant_id}/{env}")
def overview(request: Request, mp: MerchantPage = Depends(merchant_page)) -> Response:
    at = clock.now()
    today = int(at // stats.DAY)
    days = list(range(today - CHART_DAYS + 1, today + 1))
    since = days[0] * stats.DAY
    mid, env = mp.merchant.id, mp.env
    with db.read(mp.rt.engine) as conn:
        stored = datasets.get(conn, mid, env)
        counts = inbox.counts_by_state(conn, mid, env)
        rejected = rejections.count_since(conn, mid, env, at - 86400)
        last = stats.last_event(conn, mid, env)
        per_day = stats.events_per_day(conn, mid, env, since)
        volume = stats.payment_volume_per_day(conn, mid, env, since)
    # The chart shows the currency with the most volume; the others are listed beside it.
    currencies = sorted(volume, key=lambda c: (-sum(volume[c].values()), c))
    main = currencies[0] if currencies else None
    charts = [bar_chart("Events per day", days, per_day)]
    if main is not None:
        charts.append(
            bar_chart(
                f"Succeeded payments per day ({main.upper()})",
                days,
                volume[main],
                lambda v: fmt.money(v, main),
            )
        )
    context = merchant_frame(
        mp,
        "",
        title=f"Overview · {env}",
        stored=stored,
        health=stored.health(at) if stored else None,
        stale=report_is_stale(stored),
        counts=counts,
        waiting=counts["pending"] + counts["processing"],
        rejected=rejected,
        rejected_total=sum(rejected.values()),
        last=last,
        last_ago=fmt.ago(last.received_at, at) if last else "",
        charts=charts,
        other_currencies=[(c, fmt.money(sum(volume[c].values()), c)) for c in currencies[1:]],
        no_volume=main is None,
    )
    return page(request, "overview.html", context)


# ---------------------------------------------------------------- payments


def _detail(
    conn: Any, mp: MerchantPage, object_type: str, stripe_id: str
) -> tuple[objects.StoredObject, list[dict[str, Any]], list[inbox.InboxEntry]]:
    """The object (404 when unknown), its applied events oldest first, and those not applied yet."""
    item = objects.get(conn, mp.merchant.id, mp.env, object_type, stripe_id)
    if item is None:
        raise not_found()
    applied = objects.history(conn, mp.merchant.id, mp.env, stripe_id)
    waiting = timeline.unapplied_for_object(conn, mp.merchant.id, mp.env, stripe_id)
    return item, applied, waiting


@router.get("/m/{merchant_id}/{env}/payments")
def payments(
    request: Request,
    status: str | None = None,
    customer: str | None = None,
    starting_after: str | None = None,
    mp: MerchantPage = Depends(merchant_page),
) -> Response:
    filters = {"status": _opt(status, 40), "customer": _opt(customer)}
    items, more = _object_page(
        mp, "payment_intent", starting_after, filters["status"], filters["customer"]
    )
    context = merchant_frame(
        mp,
        "/payments",
        title=f"Payments · {mp.env}",
        items=items,
        filters=filters,
        statuses=PAYMENT_INTENT_STATUSES,
        **_paging(f"{mp.base}/payments", filters, starting_after, _last_id(items, more)),
    )
    return page(request, "payments.html", context)


@router.get("/m/{merchant_id}/{env}/payments/{payment_id}")
def payment(
    request: Request,
    payment_id: str,
    done: str | None = None,
    mp: MerchantPage = Depends(merchant_page),
) -> Response:
    return render_payment(
        request, mp, payment_id, notice=action_forms.PAYMENT_NOTICES.get(done or "")
    )


def render_payment(
    request: Request,
    mp: MerchantPage,
    payment_id: str,
    *,
    notice: str | None = None,
    problem: str | None = None,
    status_code: int = 200,
) -> Response:
    with db.read(mp.rt.engine) as conn:
        item, applied, waiting = _detail(conn, mp, "payment_intent", payment_id)
    status = item.data.get("status")
    context = merchant_frame(
        mp,
        "/payments",
        title=f"Payment {payment_id}",
        item=item,
        pi=item.data,
        applied=applied,
        waiting=waiting,
        can_capture=status in CAPTURABLE,
        can_cancel=status in CANCELABLE,
        # One key per button: Stripe refuses a key reused for another request.
        capture_key=action_forms.new_idempotency_key(),
        cancel_key=action_forms.new_idempotency_key(),
        notice=notice,
        problem=problem,
    )
    return page(request, "payment.html", context, status_code=status_code)


# ---------------------------------------------------------------- disputes


def dispute_view(item: objects.StoredObject, at: float) -> dict[str, Any]:
    data = item.data
    details = data.get("evidence_details") or {}
    due_by = details.get("due_by") if isinstance(details, dict) else None
    return {
        "id": item.stripe_id,
        "data": data,
        "funds": dispute_funds(data),
        "due_by": due_by,
        "urgency": fmt.due_urgency(due_by, data.get("status"), at),
        "due_in": fmt.ago(due_by, at),
    }


@router.get("/m/{merchant_id}/{env}/disputes")
def disputes(
    request: Request,
    status: str | None = None,
    starting_after: str | None = None,
    mp: MerchantPage = Depends(merchant_page),
) -> Response:
    filters = {"status": _opt(status, 40)}
    items, more = _object_page(mp, "dispute", starting_after, filters["status"])
    at = clock.now()
    context = merchant_frame(
        mp,
        "/disputes",
        title=f"Disputes · {mp.env}",
        items=[dispute_view(i, at) for i in items],
        filters=filters,
        statuses=DISPUTE_STATUSES,
        **_paging(f"{mp.base}/disputes", filters, starting_after, _last_id(items, more)),
    )
    return page(request, "disputes.html", context)


@router.get("/m/{merchant_id}/{env}/disputes/{dispute_id}")
def dispute(
    request: Request, dispute_id: str, mp: MerchantPage = Depends(merchant_page)
) -> Response:
    with db.read(mp.rt.engine) as conn:
        item, applied, waiting = _detail(conn, mp, "dispute", dispute_id)
    context = merchant_frame(
        mp,
        "/disputes",
        title=f"Dispute {dispute_id}",
        d=dispute_view(item, clock.now()),
        item=item,
        applied=applied,
        waiting=waiting,
    )
    return page(request, "dispute.html", context)


# ---------------------------------------------------------------- customers


@router.get("/m/{merchant_id}/{env}/customers")
def customers(
    request: Request,
    starting_after: str | None = None,
    mp: MerchantPage = Depends(merchant_page),
) -> Response:
    items, more = _object_page(mp, "customer", starting_after)
    context = merchant_frame(
        mp,
        "/customers",
        title=f"Customers · {mp.env}",
        items=items,
        **_paging(f"{mp.base}/customers", {}, starting_after, _last_id(items, more)),
    )
    return page(request, "customers.html", context)


@router.get("/m/{merchant_id}/{env}/customers/{customer_id}")
def customer(
    request: Request, customer_id: str, mp: MerchantPage = Depends(merchant_page)
) -> Response:
    with db.read(mp.rt.engine) as conn:
        item, applied, waiting = _detail(conn, mp, "customer", customer_id)
        pays, more = objects.list_page(
            conn, mp.merchant.id, mp.env, "payment_intent", limit=10, customer_id=customer_id
        )
    context = merchant_frame(
        mp,
        "/customers",
        title=f"Customer {customer_id}",
        item=item,
        c=item.data,
        payments=pays,
        more_payments=more,
        applied=applied,
        waiting=waiting,
    )
    return page(request, "customer.html", context)


# ---------------------------------------------------------------- events


@router.get("/m/{merchant_id}/{env}/events")
def events(
    request: Request,
    type: str | None = None,
    state: str | None = None,
    object: str | None = None,
    starting_after: str | None = None,
    replayed: str | None = None,
    reconciled: str | None = None,
    mp: MerchantPage = Depends(merchant_page),
) -> Response:
    filters = {"type": _opt(type, 120), "state": _opt(state, 12), "object": _opt(object)}
    notice: str | None = None
    if _opt(replayed):
        notice = f"Event {_opt(replayed)} is back in line: the worker applies it again shortly."
    elif reconciled:
        notice = reconcile_notice(mp)
    return render_events(request, mp, filters, starting_after, notice=notice)


def reconcile_notice(mp: MerchantPage) -> str | None:
    """What the last "Fetch missed events" run did, from the progress reconcile stores."""
    with db.read(mp.rt.engine) as conn:
        state = reconcile_state.load_state(conn, mp.merchant.id, mp.env)
    if state.run is not None:
        r = state.run
        return (
            f"Fetched {r.fetched} events from Stripe so far ({r.new} new, {r.known} already "
            f"known) in {r.pages} pages; there are more: fetch again to continue."
        )
    s = state.last_summary
    if not s:
        return None
    return (
        f"Fetched {s['fetched']} events from Stripe: {s['new']} new, {s['already_known']} "
        f"already known, {s['skipped_types']} of types we do not handle."
    )


def render_events(
    request: Request,
    mp: MerchantPage,
    filters: dict[str, str | None],
    starting_after: str | None = None,
    *,
    notice: str | None = None,
    problem: str | None = None,
    status_code: int = 200,
) -> Response:
    with db.read(mp.rt.engine) as conn:
        try:
            items, more = inbox.list_page(
                conn,
                mp.merchant.id,
                mp.env,
                limit=PAGE_SIZE,
                starting_after=_opt(starting_after),
                type_=filters.get("type"),
                state=filters.get("state"),
                object_id=filters.get("object"),
            )
        except LookupError:
            raise _bad_cursor() from None
    here = f"{mp.base}/events"
    if request.method == "GET" and request.url.query:
        here = request.url.path + f"?{request.url.query}"
    context = merchant_frame(
        mp,
        "/events",
        title=f"Events · {mp.env}",
        items=items,
        filters=filters,
        types=HANDLED_EVENTS,
        states=INBOX_STATES,
        replayable=REPLAYABLE,
        object_href=lambda t, i: object_href(mp.base, t, i),
        back=here,
        notice=notice,
        problem=problem,
        **_paging(
            f"{mp.base}/events",
            filters,
            starting_after,
            items[-1].event_id if more and items else None,
        ),
    )
    return page(request, "events.html", context, status_code=status_code)


@router.get("/m/{merchant_id}/{env}/events/{event_id}")
def event(
    request: Request,
    event_id: str,
    replayed: str | None = None,
    mp: MerchantPage = Depends(merchant_page),
) -> Response:
    with db.read(mp.rt.engine) as conn:
        entry = inbox.get(conn, mp.merchant.id, mp.env, event_id)
    if entry is None:
        raise not_found()
    body = entry.as_json(with_payload=True).get("event")
    context = merchant_frame(
        mp,
        "/events",
        title=f"Event {event_id}",
        e=entry,
        payload=_pretty(body),
        # Retention removed the body (store/retention.py): the row and its effects stay.
        pruned=entry.payload is not None and len(entry.payload) == 0,
        retention_days=mp.rt.settings.event_retention_days,
        object_link=object_href(mp.base, entry.object_type, entry.object_id),
        replayable=REPLAYABLE,
        back=request.url.path,
        notice=(
            "The event is back in line: the worker applies it again shortly." if replayed else None
        ),
    )
    return page(request, "event.html", context)


def _pretty(body: Any) -> str:
    return json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False)


@router.post("/m/{merchant_id}/{env}/events/{event_id}/replay")
def replay(
    event_id: str,
    back: str = Form(""),
    mp: MerchantPage = Depends(merchant_form),
) -> Response:
    try:
        with db.write(mp.rt.engine) as conn:
            if not inbox.replay(conn, mp.merchant.id, mp.env, event_id, clock.now()):
                raise not_found()
    except inbox.EventPruned as exc:
        raise WebError(409, "Nothing left to replay", exc.message) from None
    log.info("web replay", merchant_id=mp.merchant.id, env=mp.env, event_id=event_id)
    # Back to the list or event page the button was on, never anywhere else.
    parts = urlsplit(back)
    path = parts.path if parts.path.startswith(f"{mp.base}/events") else f"{mp.base}/events"
    if parts.scheme or parts.netloc or "//" in path:
        path = f"{mp.base}/events"
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "replayed"]
    query.append(("replayed", event_id))
    return redirect(f"{path}?{urlencode(query)}")


@router.get("/m/{rest:path}")
def unknown_page(rest: str, session: WebSession = Depends(require_session)) -> Response:
    """Any other address under /m/ answers the same HTML 404 as a foreign merchant's page."""
    raise not_found()
