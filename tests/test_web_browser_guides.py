"""The small web fixes of issue 12 in a real browser (Debian's Chromium), each with a
screenshot under test-artifacts/: no empty panel beside the New payment form, a payment not
yet seen by a webhook says so, the health's words match the button's, the connection page
shows the signature rejections the overview counts, the live page warns about an http:// URL,
and every web action answers POST/redirect/GET so a reload repeats nothing.

The browser, the server and the fake Stripe are test_web_browser.py's fixtures."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from merchant_backend.store import db, rejections
from tests import stripe_factory as sf
from tests.conftest import SECRET_KEY, add_data_set, make_merchant
from tests.stripe_helpers import ACCOUNT, wait_for
from tests.test_web_browser import (  # noqa: F401  (fixtures)
    Live,
    browser,
    live,
    page,
    shot,
    sign_in,
    site,
)

pytestmark = pytest.mark.browser

# Elements drawn as a box (a background or a border) with nothing in them.
EMPTY_PANELS = """
() => Array.from(document.querySelectorAll('main *'))
  .filter(e => {
    const s = getComputedStyle(e), r = e.getBoundingClientRect();
    if (r.width < 40 || r.height < 8 || s.visibility === 'hidden') return false;
    const boxed = s.borderTopWidth !== '0px' || s.backgroundColor !== 'rgba(0, 0, 0, 0)';
    const filled = e.innerText.trim() !== '' || e.querySelector('input,select,textarea,img,svg');
    return boxed && !filled && !['INPUT', 'SELECT', 'TEXTAREA', 'HR'].includes(e.tagName);
  })
  .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
            + (e.className ? '.' + e.className : ''))
"""


def test_new_payment_has_no_empty_panel_and_a_fresh_payment_says_no_webhook_yet(
    site: Live, page: Any
) -> None:
    from playwright.sync_api import expect

    m = make_merchant(site.rt, "Payment Shop")
    add_data_set(site.rt, m.id, "stage", account_id=ACCOUNT)
    site.fake.add_key(SECRET_KEY, ACCOUNT)
    sign_in(page, site, m.token)
    page.goto(f"{site.url}/m/{m.id}/stage/payments/new")
    expect(page.get_by_role("heading", name="New payment")).to_be_visible()
    assert page.evaluate(EMPTY_PANELS) == []
    shot(page, "guides-payment-new")

    page.get_by_label("Amount").fill("12.50")
    page.get_by_label("Currency").fill("eur")
    page.get_by_label("Payment method").fill("pm_card_visa")
    page.get_by_role("button", name="Review payment").click()
    page.get_by_role("button", name=re.compile(r"^Charge ")).click()
    page.wait_for_url(re.compile(r".*/payments/pi_[A-Za-z0-9]+\?done=created$"))
    pi_id = page.url.rsplit("/", 1)[1].split("?", 1)[0]
    synced = page.locator(".facts div", has_text="Synced")
    expect(synced).to_contain_text("not yet seen by a webhook")
    assert "None" not in synced.inner_text()
    assert page.locator('a[href$="/events/None"]').count() == 0
    shot(page, "guides-payment-no-webhook-yet")

    # The webhook arrives: the page names the event it was synced from.
    pi = site.fake.payment_intents[pi_id]
    # Newer than the answer the page was synced from (its time is when we got it).
    evt = sf.event("payment_intent.succeeded", dict(pi), created=int(time.time()) + 5)
    site.post_event(m.id, evt)
    site.drain()
    page.reload()
    expect(synced).to_contain_text(evt["id"])
    expect(synced.get_by_role("link", name=evt["id"])).to_have_attribute(
        "href", f"/m/{m.id}/stage/events/{evt['id']}"
    )


def test_the_health_names_the_button(site: Live, page: Any) -> None:
    from playwright.sync_api import expect

    m = make_merchant(site.rt, "Verify Shop")
    add_data_set(site.rt, m.id, "stage")
    sign_in(page, site, m.token)
    page.goto(f"{site.url}/m/{m.id}/stage/stripe")
    status = page.get_by_role("region", name="Connection status")
    expect(status).to_contain_text("verify the connection")
    assert "run verify" not in page.content()
    expect(page.get_by_role("button", name="Verify connection")).to_be_visible()
    shot(page, "guides-unverified")


def _reject(site: Live, merchant_id: str, times: int) -> None:
    """Deliveries signed with a secret that is not the stored one (Stripe's would be)."""
    for _ in range(times):
        raw, header = sf.signed(sf.event("account.updated", sf.obj("account")), "whsec_" + "0" * 32)
        r = httpx.post(
            f"{site.url}/webhooks/stripe/{merchant_id}/stage",
            content=raw,
            headers={"Stripe-Signature": header},
            timeout=10,
        )
        assert r.status_code == 400


def test_the_connection_page_shows_the_rejections_the_overview_counts(
    site: Live, page: Any
) -> None:
    from playwright.sync_api import expect

    m = make_merchant(site.rt, "Rejection Shop")
    add_data_set(site.rt, m.id, "stage")
    _reject(site, m.id, 3)

    def counted() -> bool:
        # The inbox writer counts rejections in memory and writes them with its next commit.
        with db.read(site.rt.engine) as conn:
            return rejections.count_since(conn, m.id, "stage", time.time() - 3600) == {
                "bad_signature": 3
            }

    wait_for("the 3 rejections to be counted", counted)
    sign_in(page, site, m.token)
    overview = page.locator("article", has_text="Rejected deliveries (24 h)")
    expect(overview.locator(".big")).to_have_text("3")
    page.get_by_role("link", name="Stripe connection").first.click()
    shown = page.locator("#webhook-rejections")
    expect(shown).to_contain_text("Rejected deliveries (24 h): 3")
    expect(shown).to_contain_text("bad signature: 3")
    expect(shown).to_contain_text("paste it in the data set above")
    shown.scroll_into_view_if_needed()
    shot(page, "guides-stripe-rejections")


def test_the_live_page_warns_that_stripe_needs_https(site: Live, page: Any) -> None:
    from playwright.sync_api import expect

    m = make_merchant(site.rt, "Live Shop")
    add_data_set(site.rt, m.id, "live")
    sign_in(page, site, m.token)
    page.goto(f"{site.url}/m/{m.id}/live/stripe")
    warning = page.locator("#live-url-warning")
    expect(warning).to_contain_text("Stripe will not send live webhooks to this URL")
    expect(warning).to_contain_text("MERCHANT_BACKEND_PUBLIC_URL=https://")
    expect(warning).to_contain_text(site.url)  # the http:// address it has now
    warning.scroll_into_view_if_needed()
    shot(page, "guides-live-https-warning")
    # Stage has no such warning: Stripe's test mode may deliver to anything it can reach.
    page.goto(f"{site.url}/m/{m.id}/stage/stripe")
    expect(page.locator("#live-url-warning")).to_have_count(0)


def test_actions_redirect_so_a_reload_repeats_nothing(site: Live, page: Any) -> None:
    from playwright.sync_api import expect

    m = make_merchant(site.rt, "Reload Shop")
    add_data_set(site.rt, m.id, "stage", account_id=ACCOUNT)
    site.fake.add_key(SECRET_KEY, ACCOUNT)
    sign_in(page, site, m.token)
    stripe_page = f"{site.url}/m/{m.id}/stage/stripe"
    page.goto(stripe_page)

    # Create the webhook: what Stripe did is said once, on the page the redirect leads to.
    page.get_by_role("button", name="Create webhook in Stripe").click()
    expect(page.locator(".notice")).to_contain_text("Created webhook endpoint")
    assert page.url.split("#", 1)[0] == stripe_page
    asked = len(site.fake.requests)
    page.reload()
    expect(page.locator(".notice")).to_have_count(0)
    assert len(site.fake.requests) == asked  # the reload sent nothing to Stripe

    # Verify against a Stripe that answers 404 (a wrong API base): the failure is reported
    # and stored; a reload shows the stored report and asks Stripe nothing.
    site.fake.fail_next(404, {"detail": "Not Found"})
    page.get_by_role("button", name="Verify connection").click()
    expect(page.locator(".problem")).to_contain_text("Verifying did not finish")
    report = page.locator("#verify-report")
    expect(report).to_contain_text("answered HTTP 404")
    expect(report).to_contain_text("MERCHANT_BACKEND_STRIPE_API_BASE may be wrong")
    expect(report).to_contain_text(site.fake.url)
    expect(page.get_by_role("region", name="Connection status")).to_contain_text(
        "answered HTTP 404"
    )
    shot(page, "guides-verify-404")
    asked = len(site.fake.requests)
    page.reload()
    expect(page.locator(".problem")).to_have_count(0)
    expect(report).to_contain_text("answered HTTP 404")
    assert len(site.fake.requests) == asked
