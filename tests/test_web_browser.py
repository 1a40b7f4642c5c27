"""The web pages in a real browser: Debian's Chromium driven by Playwright, over real HTTP.

One browser and one server (uvicorn in a thread, the fake Stripe behind it) per module; the
database is emptied after each test. Every page visited is saved as a PNG,
at desktop and at phone width, under test-artifacts/ for a reviewer to look at.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from sqlalchemy import Engine

from merchant_backend.asgi import create_app
from merchant_backend.crypto import mask
from merchant_backend.runtime import Runtime
from merchant_backend.settings import Settings
from merchant_backend.store import datasets, db, inbox
from merchant_backend.store import merchants as merchant_store
from merchant_backend.sync.worker import Worker
from merchant_backend.vocabulary import HANDLED_EVENTS
from tests import fake_stripe
from tests import stripe_factory as sf
from tests.conftest import (
    ADMIN_TOKEN,
    ARTIFACTS,
    MASTER_KEY,
    SIGNING_SECRET,
    MerchantCtx,
    _clean,
    add_data_set,
    make_merchant,
)
from tests.webhook_support import make_dead

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 10_000


# ------------------------------------------------------------------ fixtures


# Module scope: all browser tests live in this module, so this is one browser per run, and
# Playwright's sync API (which keeps an asyncio loop running in this thread while it is
# started) is stopped before any other module's test calls asyncio.run().
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: `make browser` installs Debian's chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    try:
        yield chromium
    finally:
        chromium.close()
        pw.stop()


@dataclass
class Live:
    url: str
    rt: Runtime
    app: Any
    fake: fake_stripe.FakeStripe
    worker: Worker

    def drain(self) -> int:
        return self.worker.drain()

    def post_event(
        self, merchant_id: str, evt: dict[str, Any], secret: str = SIGNING_SECRET
    ) -> None:
        raw, header = sf.signed(evt, secret)
        r = httpx.post(
            f"{self.url}/webhooks/stripe/{merchant_id}/stage",
            content=raw,
            headers={"Stripe-Signature": header},
            timeout=10,
        )
        assert r.status_code == 200, r.text


def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive(), "the server thread died while starting"
        assert time.monotonic() < deadline, "the server did not start within 15 s"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def live(
    engine: Engine, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    with fake_stripe.running() as fake:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        settings = Settings(
            database_url=database_url,
            master_key=SecretStr(MASTER_KEY),
            master_key_file=str(tmp_path_factory.mktemp("key") / "unused.key"),
            admin_token=SecretStr(ADMIN_TOKEN),
            public_url=url,
            stripe_api_base=fake.url,
            stripe_max_network_retries=0,
        )
        rt = Runtime(settings, engine=engine)
        app = create_app(rt, run_worker=False)
        # log_config=None: uvicorn's default would dictConfig the process's logging in the middle
        # of the suite, and what a later test's caplog sees would depend on the test order.
        server = uvicorn.Server(
            uvicorn.Config(app, log_config=None, log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        try:
            _wait_started(server, thread)
            yield Live(url, rt, app, fake, Worker(engine, settings, worker_id="browser-worker"))
        finally:
            server.should_exit = True
            thread.join(timeout=15)
            sock.close()


@pytest.fixture
def site(live: Live) -> Iterator[Live]:
    live.fake.endpoints.clear()
    live.fake.requests.clear()
    yield live
    _clean(live.rt.engine)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=DESKTOP)
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    context.set_default_timeout(TIMEOUT_MS)
    pg = context.new_page()
    problems: list[str] = []
    pg.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
    pg.on(
        "console",
        lambda msg: (
            problems.append(msg.text)
            if msg.type == "error" and "Content Security Policy" in msg.text
            else None
        ),
    )
    yield pg
    context.close()
    # Our own script and styles must run under our own policy.
    assert problems == []


# The outermost elements that stick out to the right, to say what breaks a phone layout.
WIDE_ELEMENTS = """
() => Array.from(document.querySelectorAll('body *'))
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
  .filter(e => !(e.parentElement && e.parentElement.getBoundingClientRect().right
                 > window.innerWidth + 1))
  .slice(0, 5)
  .map(e => e.tagName.toLowerCase() + (e.className ? '.' + e.className : ''))
"""


def shot(page: Any, name: str) -> None:
    """Save the page at desktop and phone width; on a phone nothing may stick out sideways."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"web-{name}.png"), full_page=True)
    page.set_viewport_size(PHONE)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    wide = page.evaluate(WIDE_ELEMENTS) if overflow > 0 else []
    page.screenshot(path=str(ARTIFACTS / f"web-{name}-phone.png"), full_page=True)
    page.set_viewport_size(DESKTOP)
    assert overflow <= 0, f"{name}: the page is {overflow}px wider than a phone screen: {wide}"


def sign_in(page: Any, site: Live, token: str) -> None:
    page.goto(f"{site.url}/sign-in")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r".*/(m/[^/]+/stage|merchants)$"))


def _stored(site: Live, merchant_id: str) -> datasets.StoredDataSet | None:
    with db.read(site.rt.engine) as conn:
        return datasets.get(conn, merchant_id, "stage")


# ------------------------------------------------------------------ flows


def test_connect_stage_verify_against_the_fake_stripe(site: Live, page: Any) -> None:
    from playwright.sync_api import expect

    m = make_merchant(site.rt, "Browser Shop")
    secret_key = "sk_test_" + "b7" * 10 + "4321"
    site.fake.add_key(secret_key, "acct_1BrowserShop")

    # Signing in works from the keyboard alone: the token field has the focus.
    page.goto(site.url + "/")
    expect(page).to_have_url(f"{site.url}/sign-in")
    shot(page, "sign-in")
    expect(page.get_by_label("API token")).to_be_focused()
    page.keyboard.type(m.token)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{site.url}/m/{m.id}/stage")
    assert m.token not in page.content()
    page.get_by_role("navigation", name="Sections").get_by_role(
        "link", name="Stripe connection"
    ).click()
    expect(page.get_by_role("heading", name="Stripe connection")).to_be_visible()

    # A live key in the stage data set: the error sits beside its field, nothing is stored.
    page.get_by_label("Account ID").fill("acct_1BrowserShop")
    page.get_by_label("Publishable key").fill("pk_live_TYooMQauvdEDq54NiTphI7jx")
    page.get_by_label("Secret key").fill(secret_key)
    page.get_by_role("button", name="Save Stage data set").click()
    error = page.locator("#f-publishable-key-error")
    expect(error).to_contain_text("live key")
    expect(page.locator("#error-summary")).to_be_focused()
    expect(page.get_by_label("Publishable key")).to_have_attribute("aria-invalid", "true")
    field = page.locator("#f-publishable-key").bounding_box()
    beside = error.bounding_box()
    assert 0 <= beside["y"] - (field["y"] + field["height"]) < 40
    assert page.locator("#f-account-id-error").count() == 0
    assert _stored(site, m.id) is None
    assert secret_key not in page.content()
    shot(page, "stripe-invalid")

    # Corrected: the secret must be pasted again, it was not put back into the page.
    expect(page.get_by_label("Secret key")).to_have_value("")
    page.get_by_label("Publishable key").fill("pk_test_TYooMQauvdEDq54NiTphI7jx")
    page.get_by_label("Secret key").fill(secret_key)
    page.get_by_role("button", name="Save Stage data set").click()
    expect(page.get_by_role("status").filter(has_text="saved")).to_be_visible()
    expect(page.locator("#f-secret-key-stored")).to_have_text("sk_test_…4321")
    assert secret_key not in page.content()
    assert _stored(site, m.id).secret_key_hint == "sk_test_…4321"  # type: ignore[union-attr]

    # "Replace" opens an empty field from the keyboard.
    replace = page.locator("#f-secret-key-field summary")
    replace.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Secret key")).to_be_visible()
    expect(page.get_by_label("Secret key")).to_have_value("")

    # Copy the webhook URL and the event list.
    page.get_by_role("button", name="Copy URL").click()
    expect(page.locator(".copy-row .copied")).to_have_text("Copied")
    webhook_url = f"{site.url}/webhooks/stripe/{m.id}/stage"
    assert page.evaluate("navigator.clipboard.readText()") == webhook_url
    page.get_by_role("button", name="Copy all event names").click()
    assert page.evaluate("navigator.clipboard.readText()").split("\n") == list(HANDLED_EVENTS)
    assert page.locator("#event-list-items input[type=checkbox]").count() == 15

    # Let the backend create the webhook in (fake) Stripe: its secret is stored, masked.
    page.get_by_role("button", name="Create webhook in Stripe").click()
    expect(page.locator(".notice")).to_contain_text("Created webhook endpoint")
    expect(page.locator("#f-webhook-signing-secret-stored")).to_contain_text("whsec_…")
    created = [
        r for r in site.fake.requests if (r.method, r.path) == ("POST", "/v1/webhook_endpoints")
    ]
    assert len(created) == 1
    assert created[0].one("url") == webhook_url
    assert sorted(created[0].array("enabled_events")) == sorted(HANDLED_EVENTS)

    # Verify: the named checks with their messages; the secret has not seen a delivery yet.
    page.get_by_role("button", name="Verify connection").click()
    report = page.locator("#verify-report")
    expect(report).to_be_visible()
    checks = report.locator(".check")
    expect(checks).to_have_count(5)
    for name in ("secret key accepted", "account matches", "key modes", "webhook endpoint"):
        expect(report.locator(".check-ok", has_text=name)).to_be_visible()
    expect(report.locator(".check-warning", has_text="signing secret verified")).to_contain_text(
        "has not verified a delivery"
    )
    shot(page, "stripe-verified")

    # A delivery signed with the stored secret, then verify again: all checks pass.
    with db.read(site.rt.engine) as conn:
        stored = datasets.secrets(conn, site.rt.keys.for_token, m.id, "stage")
    assert stored is not None and stored.signing_secret
    site.post_event(m.id, sf.event("account.updated", sf.obj("account")), stored.signing_secret)
    page.get_by_role("button", name="Verify connection").click()
    expect(report).to_contain_text("all 5 checks passed")
    expect(report.locator(".check-ok")).to_have_count(5)
    assert stored.signing_secret not in page.content()

    # Roll the signing secret from the keyboard: the old one stays valid for the chosen time.
    rolled = "whsec_" + "c4" * 16
    page.get_by_label("New signing secret").focus()
    page.keyboard.type(rolled)
    page.keyboard.press("Tab")
    page.keyboard.press("Control+A")
    page.keyboard.type("600")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").filter(has_text="new signing secret")).to_be_visible()
    expect(page.locator("#previous-secret")).to_contain_text("whsec_…")
    expect(page.locator("#f-webhook-signing-secret-stored")).to_have_text(mask(rolled))
    assert rolled not in page.content() and stored.signing_secret not in page.content()
    site.post_event(m.id, sf.event("account.updated", sf.obj("account")), rolled)
    site.post_event(m.id, sf.event("account.updated", sf.obj("account")), stored.signing_secret)
    shot(page, "stripe-rolled")


def test_signed_events_show_on_the_events_page_and_timeline_and_a_dead_one_replays(
    site: Live, page: Any
) -> None:
    from playwright.sync_api import expect

    m = make_merchant(site.rt, "Timeline Shop")
    add_data_set(site.rt, m.id, "stage")
    t0 = int(time.time()) - 600
    customer = sf.obj("customer", id="cus_Browser1", email="ada@example.com")
    customer["name"] = "Ada Lovelace"
    pi = sf.obj(
        "payment_intent", id="pi_Browser1", customer="cus_Browser1", amount=4200, created=t0
    )
    created = sf.event(
        "payment_intent.created", {**pi, "status": "requires_payment_method"}, created=t0
    )
    succeeded = sf.event(
        "payment_intent.succeeded",
        {**pi, "status": "succeeded", "amount_received": 4200},
        created=t0 + 5,
    )
    failed_pi = sf.obj(
        "payment_intent", id="pi_Browser2", amount=990, status="requires_payment_method"
    )
    failed = sf.event("payment_intent.payment_failed", failed_pi, created=t0 + 10)
    due_soon = int(time.time()) + 2 * 86400
    dispute = sf.obj(
        "dispute",
        id="dp_Browser1",
        status="needs_response",
        payment_intent="pi_Browser1",
        evidence_details={**sf.fixture("dispute")["evidence_details"], "due_by": due_soon},
    )
    for evt in (
        sf.event("customer.updated", customer, created=t0 - 5),
        created,
        succeeded,
        failed,
        sf.event("charge.dispute.created", dispute, created=t0 + 20),
    ):
        site.post_event(m.id, evt)
    site.drain()
    # The failed payment's event died earlier (say the database was down): replay must help.
    make_dead(site.rt.engine, failed["id"])

    sign_in(page, site, m.token)
    charts = page.locator("figure.chart")
    expect(charts).to_have_count(2)
    expect(charts.nth(0)).to_contain_text("total 5")
    expect(charts.nth(1)).to_contain_text("Succeeded payments per day (USD)")
    expect(charts.nth(1)).to_contain_text("total US$42.00")
    expect(page.locator(".counts .bad dd")).to_have_text("1")  # the dead event, in red
    shot(page, "overview")
    nav = page.get_by_role("navigation", name="Sections")
    nav.get_by_role("link", name="Events").click()
    row = page.locator(f"#row-{succeeded['id']}")
    expect(row).to_contain_text("payment_intent.succeeded")
    expect(row.locator(".badge")).to_have_text("applied")
    dead_row = page.locator(f"#row-{failed['id']}")
    expect(dead_row.locator(".badge")).to_have_text("dead")
    expect(dead_row).to_contain_text("database is locked")
    shot(page, "events")

    # The payment's page: its events in order.
    row.get_by_role("link", name="pi_Browser1").click()
    expect(page.get_by_role("heading", name="Payment pi_Browser1")).to_be_visible()
    steps = page.locator("ol.timeline li .t-type")
    expect(steps).to_have_text(["payment_intent.created", "payment_intent.succeeded"])
    expect(page.locator(".facts")).to_contain_text("US$42.00")
    shot(page, "payment")

    # Replay the dead event from the events page (filtered to dead ones).
    page.goto(f"{site.url}/m/{m.id}/stage/events?state=dead")
    page.get_by_role("button", name=f"Replay {failed['id']}").click()
    expect(page.get_by_role("status").filter(has_text="back in line")).to_be_visible()
    with db.read(site.rt.engine) as conn:
        entry = inbox.get(conn, m.id, "stage", failed["id"])
    assert entry is not None and entry.state == "pending"
    assert site.drain() == 1
    page.goto(f"{site.url}/m/{m.id}/stage/payments/pi_Browser2")
    expect(page.locator("ol.timeline li .t-type")).to_have_text(["payment_intent.payment_failed"])
    page.goto(f"{site.url}/m/{m.id}/stage/events")
    expect(page.locator(f"#row-{failed['id']} .badge")).to_have_text("applied")

    # Lists with filters: payments by status, disputes with the close due date highlighted.
    nav.get_by_role("link", name="Payments").click()
    page.get_by_label("Status").select_option("succeeded")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"status=succeeded"))
    expect(page.locator("table.list tbody tr")).to_have_count(1)
    shot(page, "payments")
    nav.get_by_role("link", name="Disputes").click()
    expect(page.locator("tr.urgent-soon")).to_contain_text("dp_Browser1")
    shot(page, "disputes")
    page.get_by_role("link", name="dp_Browser1").click()
    expect(page.locator(".due-banner")).to_contain_text("Evidence is due in")
    shot(page, "dispute")
    nav.get_by_role("link", name="Customers").click()
    page.get_by_role("link", name="cus_Browser1").click()
    expect(page.locator(".facts")).to_contain_text("Ada Lovelace")
    shot(page, "customer")
    page.goto(f"{site.url}/m/{m.id}/stage/events/{succeeded['id']}")
    shot(page, "event")


def test_sign_out_refuses_pages_and_merchants_stay_apart(site: Live, page: Any) -> None:
    from playwright.sync_api import expect

    mine = make_merchant(site.rt, "Own Shop")
    other: MerchantCtx = make_merchant(site.rt, "Other Shop")
    add_data_set(site.rt, other.id, "stage")
    pi = sf.obj("payment_intent", id="pi_OtherShop", status="succeeded")
    site.post_event(other.id, sf.event("payment_intent.succeeded", pi))
    site.drain()

    sign_in(page, site, mine.token)
    for path in ("", "/stripe", "/payments", "/payments/pi_OtherShop", "/events"):
        response = page.goto(f"{site.url}/m/{other.id}/stage{path}")
        assert response.status == 404, path
        expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
        assert "Other Shop" not in page.content() and "pi_OtherShop" not in page.content()
    shot(page, "not-found")

    cookie = next(c for c in page.context.cookies() if c["name"] == "mb_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    # Invisible to scripts: they see only the browser's time zone, which they wrote themselves.
    assert [c.split("=")[0] for c in page.evaluate("document.cookie").split("; ")] == ["mb_tz"]
    page.goto(f"{site.url}/m/{mine.id}/stage")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    response = page.goto(f"{site.url}/m/{mine.id}/stage/payments")
    assert page.url.startswith(f"{site.url}/sign-in?next=")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    # The old cookie, replayed by hand, opens nothing either: the session is gone.
    r = httpx.get(
        f"{site.url}/m/{mine.id}/stage",
        headers={"Cookie": f"mb_session={cookie['value']}"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/sign-in")

    # The operator signs in with the admin token and picks a merchant.
    sign_in(page, site, ADMIN_TOKEN)
    expect(page.get_by_role("heading", name="Merchants", exact=True)).to_be_visible()
    shot(page, "merchants")
    page.get_by_role("link", name="Other Shop").click()
    expect(page).to_have_url(f"{site.url}/m/{other.id}/stage")
    page.get_by_role("navigation", name="Environment").get_by_role("link", name="Live").click()
    expect(page).to_have_url(f"{site.url}/m/{other.id}/live")
    assert ADMIN_TOKEN not in page.content()


def test_the_operator_creates_a_merchant_and_a_reload_makes_no_second_one(
    site: Live, page: Any
) -> None:
    from playwright.sync_api import expect

    sign_in(page, site, ADMIN_TOKEN)
    page.get_by_label("Name").fill("Browser Made Shop")
    page.get_by_role("button", name="Create merchant").click()
    expect(page.get_by_role("heading", name="Merchant created")).to_be_visible()
    assert re.fullmatch(rf"{re.escape(site.url)}/merchants/mer_[0-9a-f]+/token", page.url)
    token = page.get_by_label("API token").input_value()
    assert token.startswith("mbt_") and token not in page.url
    shot(page, "merchant-token")
    # The browser's reload repeats the GET of the token page, not the form's POST.
    page.reload()
    expect(
        page.get_by_text("This token was shown once; rotate it if you did not copy it.")
    ).to_be_visible()
    assert token not in page.content()
    shot(page, "merchant-token-shown-once")
    page.go_back()  # the merchant list, loaded afresh (no-store)
    expect(page.get_by_role("heading", name="Merchants", exact=True)).to_be_visible()
    with db.read(site.rt.engine) as conn:
        made = [m for m in merchant_store.list_all(conn) if m.name == "Browser Made Shop"]
    assert len(made) == 1
    # "Rotate token" from the shown-once page shows a new one, once.
    page.goto(f"{site.url}/merchants/{made[0].id}/token")
    page.get_by_role("button", name="Rotate token").click()
    expect(page.get_by_role("heading", name="New API token")).to_be_visible()
    rotated = page.get_by_label("API token").input_value()
    assert rotated.startswith("mbt_") and rotated != token
    page.reload()
    expect(
        page.get_by_text("This token was shown once; rotate it if you did not copy it.")
    ).to_be_visible()
    with db.read(site.rt.engine) as conn:
        assert merchant_store.by_token(conn, rotated) == made[0]
        assert merchant_store.by_token(conn, token) is None
