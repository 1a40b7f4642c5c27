"""Customers: the list and a customer's page with its newest payments."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from merchant_backend.i18n import gettext as _
from merchant_backend.services import reads
from merchant_backend.web import paging
from merchant_backend.web.layout import merchant_frame
from merchant_backend.web.render import WebRoute, not_found, page
from merchant_backend.web.session import MerchantPage, merchant_page

router = APIRouter(route_class=WebRoute, include_in_schema=False)


@router.get("/m/{merchant_id}/{env}/customers")
def customers(
    request: Request,
    starting_after: str | None = None,
    mp: MerchantPage = Depends(merchant_page),
) -> Response:
    items, more = paging.object_page(mp, "customer", starting_after)
    context = merchant_frame(
        mp,
        "/customers",
        title=f"{_('Customers')} · {mp.env}",
        items=items,
        **paging.paging(f"{mp.base}/customers", {}, starting_after, paging.last_id(items, more)),
    )
    return page(request, "customers.html", context)


@router.get("/m/{merchant_id}/{env}/customers/{customer_id}")
def customer(
    request: Request, customer_id: str, mp: MerchantPage = Depends(merchant_page)
) -> Response:
    view = reads.customer_of(mp.rt, mp.merchant.id, mp.env, customer_id)
    if view is None:
        raise not_found()
    context = merchant_frame(
        mp,
        "/customers",
        title=f"{_('Customer')} {customer_id}",
        item=view.detail.item,
        c=view.detail.item.data,
        payments=view.payments,
        more_payments=view.more_payments,
        applied=view.detail.applied,
        waiting=view.detail.waiting,
    )
    return page(request, "customer.html", context)
