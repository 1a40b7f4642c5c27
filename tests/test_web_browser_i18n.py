"""Issue 12 in a real browser (Debian's Chromium): the New payment flow on an English and a
German page (``12,50``, ``1.250,00``, ``1,250`` refused on the German page, the confirmation
step), the language switch, times in the browser's time zone, and a screenshot of every page
in both languages at desktop (1280) and phone (390) width under test-artifacts/.

The browser, the server and the fake Stripe are test_web_browser.py's fixtures; each test
opens its own browser context with the language and time zone a person would have."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests import stripe_factory as sf
from tests.conftest import ADMIN_TOKEN, SECRET_KEY, MerchantCtx, add_data_set, make_merchant
from tests.stripe_helpers import ACCOUNT
from tests.test_web_browser import (  # noqa: F401  (fixtures)
    DESKTOP,
    TIMEOUT_MS,
    Live,
    browser,
    live,
    shot,
    site,
)

pytestmark = pytest.mark.browser

NBSP = "\u00a0"


@pytest.fixture
def person(browser: Any) -> Iterator[Callable[[str, str], Any]]:
    """A page in a browser set to a language (``de-DE``) and a time zone (``Europe/Berlin``),
    as a person's own browser would be; script errors and CSP violations fail the test."""
    contexts: list[Any] = []
    problems: list[str] = []

    def open_page(locale: str, zone: str) -> Any:
        context = browser.new_context(viewport=DESKTOP, locale=locale, timezone_id=zone)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        pg = context.new_page()
        pg.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
        pg.on(
            "console",
            lambda msg: (
                problems.append(msg.text)
                if msg.type == "error" and "Content Security Policy" in msg.text
                else None
            ),
        )
        return pg

    yield open_page
    for context in contexts:
        context.close()
    assert problems == []


def _sign_in(page: Any, site: Live, token: str, label: str, button: str) -> None:
    page.goto(f"{site.url}/sign-in")
    page.get_by_label(label).fill(token)
    page.get_by_role("button", name=button).click()
    page.wait_for_url(re.compile(r".*/(m/[^/]+/stage|merchants)$"))


def _shop(site: Live, name: str) -> MerchantCtx:
    site.fake.payment_intents.clear()
    m = make_merchant(site.rt, name)
    add_data_set(site.rt, m.id, "stage", account_id=ACCOUNT)
    site.fake.add_key(SECRET_KEY, ACCOUNT)
    return m


def _fill_payment(
    page: Any, site: Live, m: MerchantCtx, amount: str, words: dict[str, str]
) -> None:
    page.goto(f"{site.url}/m/{m.id}/stage/payments/new")
    page.get_by_label(words["amount"], exact=True).fill(amount)
    page.get_by_label(words["currency"], exact=True).fill("eur")
    page.get_by_label(words["method"], exact=True).fill("pm_card_visa")
    page.get_by_role("button", name=words["review"]).click()


ENGLISH = {
    "amount": "Amount",
    "currency": "Currency",
    "method": "Payment method",
    "review": "Review payment",
    "change": "Change",
}
GERMAN = {
    "amount": "Betrag",
    "currency": "Währung",
    "method": "Zahlungsmethode",
    "review": "Zahlung prüfen",
    "change": "Ändern",
}


def test_new_payment_in_german_reads_12_50_and_1_250_00_and_refuses_1_250(
    site: Live, person: Callable[[str, str], Any]
) -> None:
    from playwright.sync_api import expect

    m = _shop(site, "Bäckerei Müller")
    page = person("de-DE", "Europe/Berlin")
    _sign_in(page, site, m.token, "API-Token", "Anmelden")
    expect(page.locator("html")).to_have_attribute("lang", "de")

    # 12,50: shown as it will be charged, nothing sent before the confirmation.
    _fill_payment(page, site, m, "12,50", GERMAN)
    expect(page.get_by_role("heading", name="Zahlung bestätigen")).to_be_visible()
    expect(page.locator("#charged-amount")).to_have_text(f"12,50{NBSP}€")
    assert site.fake.payment_intents == {}
    shot(page, "i18n-de-payment-confirm")
    page.get_by_role("button", name=f"12,50{NBSP}€ belasten").click()
    page.wait_for_url(re.compile(r".*/payments/pi_[A-Za-z0-9]+\?done=created$"))
    (created,) = site.fake.payment_intents.values()
    assert created["amount"] == 1250 and created["currency"] == "eur"
    expect(page.locator(".facts")).to_contain_text(f"12,50{NBSP}€")
    expect(page.locator(".facts")).to_contain_text("MEZ")  # Berlin time, the browser's zone
    expect(page.locator(".foot")).to_contain_text("Zeiten in Europe/Berlin")

    # 1.250,00: read as one thousand two hundred and fifty; "Ändern" goes back to the form.
    _fill_payment(page, site, m, "1.250,00", GERMAN)
    expect(page.locator("#charged-amount")).to_have_text(f"1.250,00{NBSP}€")
    page.get_by_role("button", name=GERMAN["change"]).click()
    expect(page.get_by_label(GERMAN["amount"], exact=True)).to_have_value("1.250,00")
    assert len(site.fake.payment_intents) == 1

    # 1,250 on the German page: refused, with both readings and how to write each.
    _fill_payment(page, site, m, "1,250", GERMAN)
    error = page.locator("#f-amount-error")
    expect(error).to_have_text(
        f"„1,250“ kann 1,25{NBSP}€ oder 1.250,00{NBSP}€ bedeuten. Schreiben Sie 1,25 für das "
        "eine oder 1.250,00 für das andere."
    )
    expect(page.get_by_role("alert").first).to_contain_text("Es wurde nichts an Stripe gesendet.")
    expect(page.get_by_label(GERMAN["amount"], exact=True)).to_have_attribute(
        "aria-invalid", "true"
    )
    shot(page, "i18n-de-payment-refused")
    assert len(site.fake.payment_intents) == 1


def test_new_payment_in_english_reads_12_50_and_1_250_00_and_refuses_12_comma_50(
    site: Live, person: Callable[[str, str], Any]
) -> None:
    from playwright.sync_api import expect

    m = _shop(site, "Corner Shop")
    page = person("en-GB", "UTC")
    _sign_in(page, site, m.token, "API token", "Sign in")
    _fill_payment(page, site, m, "1,250.00", ENGLISH)
    expect(page.locator("#charged-amount")).to_have_text("€1,250.00")
    shot(page, "i18n-en-payment-confirm")
    page.get_by_role("button", name=ENGLISH["change"]).click()
    _fill_payment(page, site, m, "12,50", ENGLISH)
    expect(page.locator("#f-amount-error")).to_have_text(
        "Write the amount in digits with “.” before the decimals and “,” between thousands, "
        "such as 12.50 or 1,250.00."
    )
    shot(page, "i18n-en-payment-refused")
    _fill_payment(page, site, m, "12.50", ENGLISH)
    expect(page.locator("#charged-amount")).to_have_text("€12.50")
    page.get_by_role("button", name="Charge €12.50").click()
    page.wait_for_url(re.compile(r".*/payments/pi_[A-Za-z0-9]+\?done=created$"))
    assert [p["amount"] for p in site.fake.payment_intents.values()] == [1250]
    expect(page.locator(".facts")).to_contain_text("€12.50")


def test_the_language_switch_keeps_the_page_and_is_remembered(
    site: Live, person: Callable[[str, str], Any]
) -> None:
    from playwright.sync_api import expect

    m = _shop(site, "Switch Shop")
    page = person("en-GB", "UTC")
    _sign_in(page, site, m.token, "API token", "Sign in")
    page.goto(f"{site.url}/m/{m.id}/stage/payments")
    page.get_by_role("navigation", name="Language").get_by_role("link", name="Deutsch").click()
    expect(page).to_have_url(f"{site.url}/m/{m.id}/stage/payments")
    expect(page.get_by_role("heading", name=re.compile("^Zahlungen"))).to_be_visible()
    page.reload()
    expect(page.get_by_role("heading", name=re.compile("^Zahlungen"))).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "mb_lang")
    assert cookie["value"] == "de" and cookie["sameSite"] == "Strict" and cookie["httpOnly"]
    # A chosen time zone wins over the browser's.
    page.get_by_role("link", name="Sprache und Zeitzone").click()
    page.get_by_label("Zeiten anzeigen in").select_option("America/New_York")
    page.get_by_role("button", name="Zeitzone speichern").click()
    expect(page).to_have_url(f"{site.url}/m/{m.id}/stage/payments")
    expect(page.locator(".foot")).to_contain_text("Zeiten in America/New_York")
    page.get_by_role("navigation", name="Sprache").get_by_role("link", name="English").click()
    expect(page.get_by_role("heading", name=re.compile("^Payments"))).to_be_visible()


def _every_page_data(site: Live, m: MerchantCtx) -> dict[str, str]:
    """A payment, a dispute, a customer and their events, so every page has something."""
    t0 = int(time.time()) - 3 * 86400
    customer = sf.obj("customer", id="cus_I18n1", email="ada@example.com")
    customer["name"] = "Ada Lovelace"
    pi = sf.obj("payment_intent", id="pi_I18n1", customer="cus_I18n1", amount=125000, created=t0)
    pi2 = sf.obj("payment_intent", id="pi_I18n2", amount=990, status="requires_capture")
    dispute = sf.obj(
        "dispute",
        id="dp_I18n1",
        status="needs_response",
        payment_intent="pi_I18n1",
        evidence_details={
            **sf.fixture("dispute")["evidence_details"],
            "due_by": int(time.time()) + 2 * 86400,
        },
    )
    succeeded = sf.event(
        "payment_intent.succeeded",
        {**pi, "status": "succeeded", "amount_received": 125000, "currency": "eur"},
        created=t0 + 5,
    )
    for evt in (
        sf.event("customer.updated", customer, created=t0 - 5),
        succeeded,
        sf.event("payment_intent.amount_capturable_updated", pi2, created=t0 + 8),
        sf.event("charge.dispute.created", dispute, created=t0 + 20),
    ):
        site.post_event(m.id, evt)
    site.drain()
    base = f"/m/{m.id}/stage"
    return {
        "overview": base,
        "stripe": f"{base}/stripe",
        "stripe-live": f"/m/{m.id}/live/stripe",
        "payments": f"{base}/payments",
        "payment": f"{base}/payments/pi_I18n1",
        "payment-capturable": f"{base}/payments/pi_I18n2",
        "payment-new": f"{base}/payments/new",
        "disputes": f"{base}/disputes",
        "dispute": f"{base}/disputes/dp_I18n1",
        "customers": f"{base}/customers",
        "customer": f"{base}/customers/cus_I18n1",
        "events": f"{base}/events",
        "event": f"{base}/events/{succeeded['id']}",
        "preferences": "/preferences",
        "not-found": f"{base}/payments/pi_NoSuchThing",
    }


@pytest.mark.parametrize(
    ("lang", "locale", "zone", "label", "button"),
    [
        ("en", "en-GB", "UTC", "API token", "Sign in"),
        ("de", "de-DE", "Europe/Berlin", "API-Token", "Anmelden"),
    ],
)
def test_every_page_in_both_languages_at_desktop_and_phone_width(
    site: Live,
    person: Callable[[str, str], Any],
    lang: str,
    locale: str,
    zone: str,
    label: str,
    button: str,
) -> None:
    from playwright.sync_api import expect

    m = make_merchant(site.rt, "Weinhandlung Größe & Söhne")
    add_data_set(site.rt, m.id, "stage", account_id=ACCOUNT)
    pages = _every_page_data(site, m)
    page = person(locale, zone)
    page.goto(f"{site.url}/sign-in")
    expect(page.locator("html")).to_have_attribute("lang", lang)
    shot(page, f"i18n-{lang}-sign-in")
    _sign_in(page, site, m.token, label, button)
    for name, path in pages.items():
        page.goto(site.url + path)
        expect(page.locator("html")).to_have_attribute("lang", lang)
        shot(page, f"i18n-{lang}-{name}")
    # The confirmation step, with a German amount on the German page.
    words = GERMAN if lang == "de" else ENGLISH
    _fill_payment(page, site, m, "1.250,00" if lang == "de" else "1,250.00", words)
    expect(page.locator("#charged-amount")).to_be_visible()
    shot(page, f"i18n-{lang}-payment-confirm-page")
    # The operator's pages.
    page.get_by_role("button", name="Abmelden" if lang == "de" else "Sign out").click()
    _sign_in(page, site, ADMIN_TOKEN, label, button)
    shot(page, f"i18n-{lang}-merchants")
