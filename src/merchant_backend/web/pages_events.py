"""The event inbox: the list (by type, state and object), an event's page, replay, and
"Fetch missed events" (reconcile)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from fastapi import APIRouter, Depends, Form, Request, Response

from merchant_backend import logs
from merchant_backend.errors import UnknownCursor
from merchant_backend.i18n import gettext as _
from merchant_backend.services import events as inbox_actions
from merchant_backend.services import reads
from merchant_backend.services import reconcile as reconciling
from merchant_backend.services.events import EventPruned
from merchant_backend.services.reconcile import Run
from merchant_backend.stripe.reconcile import default_holder
from merchant_backend.vocabulary import HANDLED_EVENTS, INBOX_STATES
from merchant_backend.web import paging, stripe_pages
from merchant_backend.web.domain_messages import said
from merchant_backend.web.layout import merchant_frame
from merchant_backend.web.outcomes import needs_data_set, problem_of
from merchant_backend.web.render import WebError, WebRoute, not_found, page, redirect, redirect_with
from merchant_backend.web.session import MerchantPage, merchant_form, merchant_page

log = logs.get("merchant_backend.web")
router = APIRouter(route_class=WebRoute, include_in_schema=False)

# Entries that may be put back in line from the events page.
REPLAYABLE = frozenset({"dead", "failed", "applied"})
# A run from the browser stops after this many pages (100 events each) so the page answers
# within seconds; reconcile keeps its place and the next click (or `reconcile`) goes on.
WEB_RECONCILE_PAGES = 20


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
    filters = {
        "type": paging.opt(type, 120),
        "state": paging.opt(state, 12),
        "object": paging.opt(object),
    }
    notice: str | None = None
    if paging.opt(replayed):
        notice = _("Event %(id)s is back in line: the worker applies it again shortly.") % {
            "id": paging.opt(replayed)
        }
    elif reconciled:
        notice = reconcile_notice(mp)
    return render_events(request, mp, filters, starting_after, notice=notice)


def reconcile_notice(mp: MerchantPage) -> str | None:
    """What the last "Fetch missed events" run did, from the progress reconcile stores."""
    state = reads.reconcile_progress(mp.rt, mp.merchant.id, mp.env)
    if state.run is not None:
        r = state.run
        return _(
            "Fetched %(fetched)s events from Stripe so far (%(new)s new, %(known)s already known) "
            "in %(pages)s pages; there are more: fetch again to continue."
        ) % {"fetched": r.fetched, "new": r.new, "known": r.known, "pages": r.pages}
    s = state.last_summary
    if not s:
        return None
    return _(
        "Fetched %(fetched)s events from Stripe: %(new)s new, %(known)s already known, "
        "%(skipped)s of types we do not handle."
    ) % {
        "fetched": s["fetched"],
        "new": s["new"],
        "known": s["already_known"],
        "skipped": s["skipped_types"],
    }


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
    try:
        items, more = reads.list_events(
            mp.rt,
            mp.merchant.id,
            mp.env,
            limit=paging.PAGE_SIZE,
            starting_after=paging.opt(starting_after),
            type_=filters.get("type"),
            state=filters.get("state"),
            object_id=filters.get("object"),
        )
    except UnknownCursor:
        raise paging.bad_cursor() from None
    here = f"{mp.base}/events"
    if request.method == "GET" and request.url.query:
        here = request.url.path + f"?{request.url.query}"
    context = merchant_frame(
        mp,
        "/events",
        title=f"{_('Events')} · {mp.env}",
        items=items,
        filters=filters,
        types=HANDLED_EVENTS,
        states=INBOX_STATES,
        replayable=REPLAYABLE,
        object_href=lambda t, i: paging.object_href(mp.base, t, i),
        back=here,
        notice=notice,
        problem=problem,
        **paging.paging(
            f"{mp.base}/events",
            filters,
            starting_after,
            items[-1].event_id if more and items else None,
        ),
    )
    return page(request, "events.html", context, status_code=status_code)


class _PageLimit(Exception):
    """Raised from reconcile's page callback after the page was committed."""


def _stop_after(pages: int) -> Any:
    """Counts this request's pages (a resumed run's count includes earlier ones)."""
    done = 0

    def on_page(_run: Run) -> None:
        nonlocal done
        done += 1
        if done >= pages:
            raise _PageLimit

    return on_page


@router.post("/m/{merchant_id}/{env}/events/reconcile")
async def reconcile(request: Request, mp: MerchantPage = Depends(merchant_form)) -> Response:
    return await stripe_pages.run(mp, _reconcile, request, mp)


def _reconcile(request: Request, mp: MerchantPage) -> Response:
    needs_data_set(mp)
    try:
        reconciling.reconcile(
            mp.rt,
            mp.merchant.id,
            mp.env,
            on_page=_stop_after(WEB_RECONCILE_PAGES),
            holder=f"the web pages ({default_holder()})",
        )
    except _PageLimit:
        log.info("web reconcile paused", merchant_id=mp.merchant.id, env=mp.env)
    except Exception as exc:
        failure = problem_of(exc, "reconcile", mp)
        # To the events page with the message: reloading it does not fetch again.
        return redirect_with(
            request,
            f"{mp.base}/events",
            mp.session.csrf_token,
            problem=_("Fetching missed events did not finish: %(problem)s")
            % {"problem": failure.summary},
            detail=failure.detail,
        )
    return redirect(f"{mp.base}/events?reconciled=1")


@router.get("/m/{merchant_id}/{env}/events/{event_id}")
def event(
    request: Request,
    event_id: str,
    replayed: str | None = None,
    mp: MerchantPage = Depends(merchant_page),
) -> Response:
    entry = reads.get_event(mp.rt, mp.merchant.id, mp.env, event_id)
    if entry is None:
        raise not_found()
    body = entry.as_json(with_payload=True).get("event")
    context = merchant_frame(
        mp,
        "/events",
        title=f"{_('Event')} {event_id}",
        e=entry,
        payload=json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False),
        object_link=paging.object_href(mp.base, entry.object_type, entry.object_id),
        # Retention removed the body (store/retention.py): the row and its effects stay.
        pruned=entry.payload is not None and len(entry.payload) == 0,
        retention_days=mp.rt.settings.event_retention_days,
        replayable=REPLAYABLE,
        back=request.url.path,
        notice=(
            _("The event is back in line: the worker applies it again shortly.")
            if replayed
            else None
        ),
    )
    return page(request, "event.html", context)


@router.post("/m/{merchant_id}/{env}/events/{event_id}/replay")
def replay(
    event_id: str,
    back: str = Form(""),
    mp: MerchantPage = Depends(merchant_form),
) -> Response:
    try:
        replayed = inbox_actions.replay_event(mp.rt, mp.merchant.id, mp.env, event_id)
    except EventPruned as exc:
        raise WebError(
            409, _("Nothing left to replay"), said(exc.template, exc.values, exc.message)
        ) from None
    if replayed is None:
        raise not_found()
    log.info("web replay", merchant_id=mp.merchant.id, env=mp.env, event_id=event_id)
    # Back to the list or event page the button was on, never anywhere else.
    parts = urlsplit(back)
    path = parts.path if parts.path.startswith(f"{mp.base}/events") else f"{mp.base}/events"
    if parts.scheme or parts.netloc or "//" in path:
        path = f"{mp.base}/events"
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "replayed"]
    query.append(("replayed", event_id))
    return redirect(f"{path}?{urlencode(query)}")
