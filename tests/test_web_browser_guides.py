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

from tests import stripe_factory as sf
from tests.conftest import SECRET_KEY, add_data_set, make_merchant
from tests.stripe_helpers import ACCOUNT
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
    page.get_by_role("button", name="Create payment").click()
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
