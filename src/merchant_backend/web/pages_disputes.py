"""Disputes: the list (by status) and a dispute's page, with the money it moved and its
evidence deadline."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from merchant_backend import clock
from merchant_backend.i18n import gettext as _
from merchant_backend.services import reads
from merchant_backend.services.reads import StoredObject
from merchant_backend.sync.handlers import dispute_funds
from merchant_backend.vocabulary import DISPUTE_STATUSES
from merchant_backend.web import format as fmt
from merchant_backend.web import paging
from merchant_backend.web.layout import merchant_frame
from merchant_backend.web.render import WebRoute, not_found, page
from merchant_backend.web.session import MerchantPage, merchant_page

router = APIRouter(route_class=WebRoute, include_in_schema=False)


def dispute_view(item: StoredObject, at: float) -> dict[str, Any]:
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
    filters = {"status": paging.opt(status, 40)}
    items, more = paging.object_page(mp, "dispute", starting_after, filters["status"])
    at = clock.now()
    context = merchant_frame(
        mp,
        "/disputes",
        title=f"{_('Disputes')} · {mp.env}",
        items=[dispute_view(i, at) for i in items],
        filters=filters,
        statuses=DISPUTE_STATUSES,
        **paging.paging(
            f"{mp.base}/disputes", filters, starting_after, paging.last_id(items, more)
        ),
    )
    return page(request, "disputes.html", context)


@router.get("/m/{merchant_id}/{env}/disputes/{dispute_id}")
def dispute(
    request: Request, dispute_id: str, mp: MerchantPage = Depends(merchant_page)
) -> Response:
    detail = reads.object_detail(mp.rt, mp.merchant.id, mp.env, "dispute", dispute_id)
    if detail is None:
        raise not_found()
    payment = detail.item.data.get("payment_intent")
    context = merchant_frame(
        mp,
        "/disputes",
        title=f"{_('Dispute')} {dispute_id}",
        d=dispute_view(detail.item, clock.now()),
        # A dispute can name a payment made before the account was connected: no link to a
        # page that would only say "not found".
        payment_stored=isinstance(payment, str)
        and reads.has_object(mp.rt, mp.merchant.id, mp.env, "payment_intent", payment),
        item=detail.item,
        applied=detail.applied,
        waiting=detail.waiting,
    )
    return page(request, "dispute.html", context)
