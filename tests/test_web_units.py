"""The web pages' pure parts (money, deadlines, chart, form) and their two store modules."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from merchant_backend import i18n
from merchant_backend.errors import FieldError
from merchant_backend.runtime import Runtime
from merchant_backend.store import db, stats, web_sessions
from merchant_backend.store.inbox import NewEvent, insert_new
from merchant_backend.store.objects import apply_snapshots
from merchant_backend.store.schema import web_sessions as web_sessions_table
from merchant_backend.sync.handlers import snapshot_of
from merchant_backend.web import format as fmt
from merchant_backend.web import stripe_form
from merchant_backend.web.chart import bar_chart
from merchant_backend.web.render import safe_next
from tests.conftest import MerchantCtx

DAY = 86400


@pytest.mark.parametrize(
    ("amount", "currency", "english", "german"),
    [
        (1234, "usd", "US$12.34", "12,34\u00a0$"),
        (5, "eur", "€0.05", "0,05\u00a0€"),
        (123456789, "usd", "US$1,234,567.89", "1.234.567,89\u00a0$"),
        (1234, "jpy", "JP¥1,234", "1.234\u00a0¥"),  # zero-decimal: Stripe's 1234 is ¥1234
        (1234, "kwd", "KWD\u00a01.234", "1,234\u00a0KWD"),  # three decimals
        (1250, "kwd", "KWD\u00a01.25", "1,25\u00a0KWD"),  # ending in 0: never "1,250 KWD"
        (-2500, "usd", "-US$25.00", "-25,00\u00a0$"),
        (1234, "xyz", "12.34 XYZ", "12.34 XYZ"),  # not a currency Stripe lists
        (None, "usd", "—", "—"),
        (True, "usd", "—", "—"),
    ],
)
def test_money_follows_stripes_smallest_units_and_the_readers_language(
    amount: object, currency: str, english: str, german: str
) -> None:
    assert fmt.money(amount, currency) == english  # outside a request: English
    with i18n.use(i18n.Reader("de")):
        assert fmt.money(amount, currency) == german


def test_dispute_deadline_is_urgent_under_three_days_unless_closed() -> None:
    at = 1_000_000.0
    assert fmt.due_urgency(at + 2.9 * DAY, "needs_response", at) == "soon"
    assert fmt.due_urgency(at + 3 * DAY, "needs_response", at) is None
    assert fmt.due_urgency(at - 1, "warning_needs_response", at) == "overdue"
    for closed in ("won", "lost", "warning_closed"):
        assert fmt.due_urgency(at + DAY, closed, at) is None
    assert fmt.due_urgency(None, "needs_response", at) is None


def test_ago_reads_naturally_both_ways_in_both_languages() -> None:
    assert fmt.ago(100, 130) == "30 seconds ago"
    assert fmt.ago(0, 5 * 60) == "5 minutes ago"
    assert fmt.ago(0, 3 * 3600) == "3 hours ago"
    assert fmt.ago(0, 3 * DAY) == "3 days ago"
    assert fmt.ago(10 * 3600, 0) == "in 10 hours"
    with i18n.use(i18n.Reader("de")):
        assert fmt.ago(0, 5 * 60) == "vor 5 Minuten"
        assert fmt.ago(10 * 3600, 0) == "in 10 Stunden"


def test_times_are_shown_in_the_readers_language_and_zone() -> None:
    ts = 1_796_133_780  # 2026-12-01 14:03 UTC
    assert fmt.when(ts) == "1 Dec 2026, 14:03 UTC"
    with i18n.use(i18n.Reader("de", "Europe/Berlin")):
        assert fmt.when(ts) == "01.12.2026, 15:03 MEZ"
    with i18n.use(i18n.Reader("en", "America/New_York")):
        assert fmt.when(ts) == "1 Dec 2026, 09:03 GMT-05:00"
    assert fmt.iso(ts) == "2026-12-01T14:03:00+00:00"  # machine-readable stays UTC


def test_chart_scales_bars_to_the_peak_and_keeps_small_days_visible() -> None:
    days = [100, 101, 102, 103]
    chart = bar_chart("x", days, {100: 10, 102: 1000, 103: 0}, lambda v: f"{v} u")
    heights = [b.height for b in chart.bars]
    plot = chart.baseline - chart.bars[2].y
    assert heights[2] == pytest.approx(plot)  # the peak fills the plot
    assert heights[0] == 1.5  # 1% of the peak would vanish; it stays visible
    assert heights[1] == 0 and heights[3] == 0
    assert all(b.y + b.height == pytest.approx(chart.baseline) for b in chart.bars)
    assert all(b.x >= 0 and b.x + b.width <= chart.width for b in chart.bars)
    assert chart.max_text == "1000 u" and chart.total_text == "1010 u"
    assert [t.anchor for t in chart.ticks] == ["start", "middle", "end"]
    empty = bar_chart("x", days, {})
    assert all(b.height == 0 for b in empty.bars) and empty.max_text == "0"


def test_form_never_puts_a_secret_back_and_an_empty_secret_keeps_the_stored_one() -> None:
    fields = stripe_form.fields(
        "stage",
        None,
        {"account_id": "acct_1X", "publishable_key": "pk_test_x", "secret_key": "sk_test_SECRET"},
        [FieldError("secret_key", "bad")],
    )
    by_name = {f.name: f for f in fields}
    assert by_name["account_id"].value == "acct_1X"
    assert by_name["secret_key"].value == "" and by_name["secret_key"].error == "bad"
    assert "Profile" in by_name["account_id"].help and "Accounts" in by_name["account_id"].help
    assert "Reveal" in by_name["webhook_signing_secret"].help
    data = stripe_form.to_input(
        {"account_id": " acct_1X\n", "publishable_key": "pk", "secret_key": "  "}
    )
    assert data.account_id == "acct_1X"
    assert data.secret_key is None and data.webhook_signing_secret is None


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("/m/mer_1/stage/events?state=dead", "/m/mer_1/stage/events?state=dead"),
        ("//evil.example/", None),
        ("https://evil.example/", None),
        ("/\\evil.example", None),
        ("", None),
    ],
)
def test_only_local_paths_are_followed_after_sign_in(given: str, kept: str | None) -> None:
    assert safe_next(given) == kept


# ------------------------------------------------------------------ stores (both databases)


def test_sessions_store_only_a_hash_and_expire(runtime: Runtime, merchant: MerchantCtx) -> None:
    at = time.time()
    with db.write(runtime.engine) as conn:
        sid, session = web_sessions.create(conn, merchant_id=merchant.id, is_admin=False, at=at)
        old_sid, _ = web_sessions.create(
            conn, merchant_id=None, is_admin=True, at=at - 2 * web_sessions.SESSION_SECONDS
        )
    with db.read(runtime.engine) as conn:
        assert web_sessions.get(conn, sid, at) == session
        assert web_sessions.get(conn, sid + "x", at) is None
        assert web_sessions.get(conn, old_sid, at) is None  # expired
        stored = [r.id_hash for r in conn.execute(select(web_sessions_table))]
    assert sid not in stored and web_sessions.hash_id(sid) in stored
    with db.write(runtime.engine) as conn:
        assert web_sessions.purge_expired(conn, at) == 1
        assert web_sessions.delete_(conn, sid)
        assert not web_sessions.delete_(conn, sid)


def _event(merchant_id: str, n: int, created: int) -> NewEvent:
    return NewEvent(
        merchant_id=merchant_id,
        env="stage",
        event_id=f"evt_stats{n}",
        type="payment_intent.created",
        created=created,
        object_type="payment_intent",
        object_id=f"pi_stats{n}",
        payload=b"{}",
        source="webhook",
        handled=True,
    )


def test_per_day_figures_count_utc_days_exactly(runtime: Runtime, merchant: MerchantCtx) -> None:
    day = 20_000  # a day number since the epoch
    start = day * DAY
    created = [start - 1, start, start + DAY - 1, start + DAY]
    with db.write(runtime.engine) as conn:
        insert_new(conn, [_event(merchant.id, i, c) for i, c in enumerate(created)], time.time())
        snaps = []
        for i, (amount, currency, status, c) in enumerate(
            [
                (1000, "usd", "succeeded", start + 5),
                (250, "usd", "succeeded", start + DAY - 1),
                (999, "usd", "canceled", start + 10),  # not money received
                (700, "eur", "succeeded", start + DAY + 1),
                (50, "usd", "succeeded", start - 1),  # before the window
            ]
        ):
            obj = {
                "id": f"pi_vol{i}",
                "object": "payment_intent",
                "amount": amount,
                "currency": currency,
                "status": status,
                "created": c,
            }
            snaps.append(
                snapshot_of(
                    "payment_intent",
                    obj,
                    event_id=f"evt_vol{i}",
                    event_type="payment_intent.succeeded",
                    event_created=c,
                )
            )
        apply_snapshots(conn, merchant.id, "stage", snaps)
    with db.read(runtime.engine) as conn:
        assert stats.events_per_day(conn, merchant.id, "stage", start) == {day: 2, day + 1: 1}
        assert stats.events_per_day(conn, merchant.id, "live", start) == {}
        volume = stats.payment_volume_per_day(conn, merchant.id, "stage", start)
        last = stats.last_event(conn, merchant.id, "stage")
    assert volume == {"usd": {day: 1250}, "eur": {day + 1: 700}}
    assert last is not None and last.event_id == "evt_stats3" and last.state == "pending"
