"""The Notifications page's one-time secrets in a real browser (Debian's Chromium): a merchant
adds a destination and makes it a new signing secret, and each secret is shown once.

"Add destination" and "New signing secret" answer with POST/redirect/GET (services/once.py):
the page the browser lands on shows the secret once; a reload, Back, and the same form sent
again (what Back and submit from a kept copy of the page sends) show it no more, add no
second destination and rotate nothing again. tests/test_web_destination_reveal.py proves the
same without a browser; this walks it as a merchant does, through the browser's own redirects,
history and cache.

A double click on such a button, with the second click landing while the browser follows the
post's redirect, cancelled the page that had just taken the secret: the merchant landed on "shown
once" without ever seeing it. The page's script now sends such a form once (static/app.js).

The browser, the server and the fake Stripe are test_web_browser.py's fixtures."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from merchant_backend.crypto import mask
from merchant_backend.outbound import signing, ssrf
from merchant_backend.services import once
from merchant_backend.store import db
from merchant_backend.store import destinations as destination_store
from merchant_backend.store import merchants as merchant_store
from merchant_backend.store.schema import outbound_destinations
from tests.conftest import ADMIN_TOKEN, MerchantCtx, add_data_set, make_merchant
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

HOOK = "https://hooks.notify-shop.example/stripe-changes"
PUBLIC_ADDRESS = "93.184.216.34"  # what HOOK's host "resolves" to: tests have no DNS
SECRET = re.compile(r"whsec_[A-Za-z0-9+/]{43}=")  # the documented prefix, 32 random bytes
SHOWN_ONCE = "This signing secret was shown once; rotate it if you did not copy it."

# What the browser sends for a form: every field, as the form stands.
SENT = "form => Array.from(new FormData(form).entries())"
# The same form sent again, as Back and submit from a kept copy of the page would send it.
SEND_AGAIN = """([action, fields]) => {
  const form = document.createElement("form");
  form.method = "post";
  form.action = action;
  for (const [name, value] of fields) {
    const input = document.createElement("input");
    input.type = "hidden";
    input.name = name;
    input.value = value;
    form.appendChild(input);
  }
  document.body.appendChild(form);
  form.submit();
}"""


def _signed_in_shop(
    site: Live, page: Any, monkeypatch: pytest.MonkeyPatch
) -> tuple[MerchantCtx, str]:
    """A merchant with a stage data set, signed in; its Notifications page's URL."""
    monkeypatch.setattr(ssrf, "resolve_host", lambda host, port: [PUBLIC_ADDRESS])
    m = make_merchant(site.rt, "Notify Shop")
    add_data_set(site.rt, m.id, "stage")
    sign_in(page, site, m.token)
    return m, f"{site.url}/m/{m.id}/stage/notifications"


def _listed(site: Live, m: MerchantCtx) -> list[dict[str, Any]]:
    """The merchant's stage destinations, as its API lists them."""
    r = httpx.get(
        f"{site.url}/api/v1/merchants/{m.id}/stage/destinations",
        headers={"Authorization": f"Bearer {m.token}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    data: list[dict[str, Any]] = r.json()["data"]
    return data


def _in_force(site: Live, destination_id: str) -> str:
    """The signing secret the dispatcher signs with, decrypted from the destination's row."""
    with db.read(site.rt.engine) as conn:
        row = conn.execute(
            outbound_destinations.select().where(outbound_destinations.c.id == destination_id)
        ).one()
    ring = site.rt.keys.for_token(row.secret_enc)
    return destination_store.secret_of(ring, row.id, row.merchant_id, row.env, row.secret_enc)


def _is_secret_page(response: Any) -> bool:
    return response.request.method == "GET" and response.url.endswith("/secret")


def _submitted(page: Any, action: str, send: Callable[[], Any]) -> Any:
    """Post the form to ``action`` with ``send()``: the response of the secret page the browser
    lands on, after the post's 303 (asserted)."""
    with page.expect_response(_is_secret_page) as landed:
        send()
    response = landed.value
    posted = response.request.redirected_from
    assert posted is not None and posted.method == "POST" and posted.url == action
    assert posted.response().status == 303
    assert response.status == 200 and response.headers["cache-control"] == "no-store"
    return response


def test_a_destinations_signing_secret_is_shown_once_and_a_reload_or_resend_repeats_nothing(
    site: Live, page: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect

    m, base = _signed_in_shop(site, page, monkeypatch)
    page.get_by_role("navigation", name="Sections").get_by_role(
        "link", name="Notifications"
    ).click()
    expect(page).to_have_url(base)
    expect(page.get_by_text("No destination for this environment yet.")).to_be_visible()

    # Add a destination: the browser lands on its secret page, which shows the secret.
    page.get_by_label("URL", exact=True).fill(HOOK)
    page.get_by_label("Description (optional)").fill("Order sync")
    add = page.locator("form").filter(has=page.get_by_role("button", name="Add destination"))
    add_fields = add.evaluate(SENT)
    landed = _submitted(
        page, base, lambda: page.get_by_role("button", name="Add destination").click()
    )
    [listed] = _listed(site, m)
    secret_page = f"{base}/{listed['id']}/secret"
    assert landed.url == secret_page
    expect(page.get_by_role("alert")).to_contain_text(
        "Copy the signing secret now: it is not shown again."
    )
    field = page.get_by_label("Signing secret", exact=True)
    secret = field.input_value()
    assert SECRET.fullmatch(secret) and len(signing.key_of(secret)) == 32
    assert secret not in page.url
    assert _in_force(site, listed["id"]) == secret
    assert listed["url"] == HOOK and listed["secret_hint"] == mask(secret)
    expect(page.locator(".facts code.masked")).to_have_text(mask(secret) or "")
    page.get_by_role("button", name="Copy secret").click()
    expect(page.locator(".copy-row .copied")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    shot(page, "destination-secret")

    # A reload loads the secret page again: the secret is not there any more.
    again = page.reload()
    assert again is not None and again.headers["cache-control"] == "no-store"
    expect(page.get_by_text(SHOWN_ONCE)).to_be_visible()
    expect(field).to_have_count(0)
    assert secret not in page.content()
    shot(page, "destination-secret-shown-once")
    # Back: the Notifications page loaded afresh, the one destination on it, no secret.
    back = page.go_back()
    assert back is not None and back.url == base and back.status == 200
    rows = page.locator("table.destinations tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(HOOK)
    assert secret not in page.content()

    # The first form sent again (its nonce with it): no second destination, nothing shown.
    _submitted(page, base, lambda: page.evaluate(SEND_AGAIN, [base, add_fields]))
    expect(page).to_have_url(secret_page)
    expect(page.get_by_text(SHOWN_ONCE)).to_be_visible()
    assert secret not in page.content()
    assert [d["id"] for d in _listed(site, m)] == [listed["id"]]
    assert _in_force(site, listed["id"]) == secret

    # "New signing secret" from the destination's page: a new secret, shown once, in force.
    page.goto(base)
    page.get_by_role("link", name=HOOK).click()
    expect(page).to_have_url(f"{base}/{listed['id']}")
    assert secret not in page.content()
    rotate_action = f"{base}/{listed['id']}/rotate"
    rotate = page.locator("form").filter(has=page.get_by_role("button", name="New signing secret"))
    rotate_fields = rotate.evaluate(SENT)
    _submitted(
        page, rotate_action, lambda: page.get_by_role("button", name="New signing secret").click()
    )
    expect(page).to_have_url(secret_page)
    expect(page.get_by_text("The old signing secret no longer works")).to_be_visible()
    rotated = field.input_value()
    assert SECRET.fullmatch(rotated) and rotated != secret
    assert secret not in page.content()
    assert _in_force(site, listed["id"]) == rotated
    expect(page.locator(".facts code.masked")).to_have_text(mask(rotated) or "")
    shot(page, "destination-secret-rotated")
    page.reload()
    expect(page.get_by_text(SHOWN_ONCE)).to_be_visible()
    assert rotated not in page.content()

    # The rotate form sent again: nothing rotated, the secret just copied stays in force.
    _submitted(
        page, rotate_action, lambda: page.evaluate(SEND_AGAIN, [rotate_action, rotate_fields])
    )
    expect(page.get_by_text(SHOWN_ONCE)).to_be_visible()
    assert rotated not in page.content()
    assert _in_force(site, listed["id"]) == rotated
    [still] = _listed(site, m)
    assert still["id"] == listed["id"] and still["secret_hint"] == mask(rotated)


class HeldReveal:
    """``services.once``'s ``take``, with the first secret page held once it has taken the
    secret, until ``release``: a slow connection, on which the answer is still on its way."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        self.real: Callable[..., Any] = getattr(once, name)
        self.taken, self.released = threading.Event(), threading.Event()
        self.calls: list[bool] = []  # one per secret page served: was there a secret to show
        monkeypatch.setattr(once, name, self.take)

    def take(self, *args: Any) -> Any:
        shown = self.real(*args)
        self.calls.append(shown is not None)
        if len(self.calls) == 1:
            self.taken.set()
            self.released.wait(10)
        return shown


def _double_click(page: Any, button: Any, held: HeldReveal) -> None:
    """Click ``button`` and, while the browser waits for the secret page the post redirected
    to (the server has taken the secret for it), click the same place again."""
    box = button.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    try:
        page.mouse.click(x, y)
        assert held.taken.wait(10), "the post did not lead to the secret page"
        page.mouse.click(x, y)  # the form's page is still shown: the next has not come yet
    finally:
        held.released.set()


def test_a_double_click_on_add_destination_or_new_signing_secret_still_shows_the_secret(
    site: Live, page: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect

    m, base = _signed_in_shop(site, page, monkeypatch)
    page.goto(base)
    page.get_by_label("URL", exact=True).fill(HOOK)
    field = page.get_by_label("Signing secret", exact=True)

    held = HeldReveal(monkeypatch, "take_destination_secret")
    _double_click(page, page.get_by_role("button", name="Add destination"), held)
    [listed] = _listed(site, m)
    page.wait_for_url(f"{base}/{listed['id']}/secret")
    assert held.calls == [True], "the second click sent the form again and lost the secret"
    secret = field.input_value()
    assert SECRET.fullmatch(secret) and _in_force(site, listed["id"]) == secret

    page.goto(f"{base}/{listed['id']}")
    held = HeldReveal(monkeypatch, "take_destination_secret")
    _double_click(page, page.get_by_role("button", name="New signing secret"), held)
    page.wait_for_url(f"{base}/{listed['id']}/secret")
    assert held.calls == [True], "the second click sent the form again and lost the secret"
    expect(page.get_by_text("The old signing secret no longer works")).to_be_visible()
    rotated = field.input_value()
    assert SECRET.fullmatch(rotated) and rotated != secret
    assert _in_force(site, listed["id"]) == rotated
    assert len(_listed(site, m)) == 1


def test_a_double_click_on_create_merchant_still_shows_the_token(
    site: Live, page: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.sync_api import expect

    sign_in(page, site, ADMIN_TOKEN)
    page.get_by_label("Name").fill("Double Click Shop")
    held = HeldReveal(monkeypatch, "take_merchant_token")
    _double_click(page, page.get_by_role("button", name="Create merchant"), held)
    page.wait_for_url(re.compile(r".*/merchants/mer_[0-9a-f]+/token$"))
    assert held.calls == [True], "the second click sent the form again and lost the token"
    expect(page.get_by_role("heading", name="Merchant created")).to_be_visible()
    token = page.get_by_label("API token").input_value()
    assert token.startswith("mbt_")
    with db.read(site.rt.engine) as conn:
        [made] = [m for m in merchant_store.list_all(conn) if m.name == "Double Click Shop"]
        assert merchant_store.by_token(conn, token) == made
