"""A merchant's overview of one environment: health, the inbox, rejections, two charts."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from merchant_backend import clock
from merchant_backend.i18n import gettext as _
from merchant_backend.services import reads
from merchant_backend.web import format as fmt
from merchant_backend.web.chart import bar_chart
from merchant_backend.web.layout import merchant_frame
from merchant_backend.web.render import WebRoute, page
from merchant_backend.web.session import MerchantPage, merchant_page
from merchant_backend.web.stripe_form import report_is_stale

router = APIRouter(route_class=WebRoute, include_in_schema=False)

CHART_DAYS = 14


@router.get("/m/{merchant_id}/{env}")
def overview(request: Request, mp: MerchantPage = Depends(merchant_page)) -> Response:
    at = clock.now()
    today = int(at // reads.DAY)
    days = list(range(today - CHART_DAYS + 1, today + 1))
    figures = reads.overview(mp.rt, mp.merchant.id, mp.env, at=at, since=days[0] * reads.DAY)
    stored, counts, rejected, last = (
        figures.data_set,
        figures.counts,
        figures.rejected,
        figures.last,
    )
    volume = figures.volume_per_day
    # The chart shows the currency with the most volume; the others are listed beside it.
    currencies = sorted(volume, key=lambda c: (-sum(volume[c].values()), c))
    main = currencies[0] if currencies else None
    charts = [bar_chart(_("Events per day"), days, figures.events_per_day)]
    if main is not None:
        charts.append(
            bar_chart(
                _("Succeeded payments per day (%(currency)s)") % {"currency": main.upper()},
                days,
                volume[main],
                lambda v: fmt.money(v, main),
            )
        )
    context = merchant_frame(
        mp,
        "",
        title=f"{_('Overview')} · {mp.env}",
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
