"""The web pages' actions: roll the signing secret, delete a data set, fetch missed events,
take / capture / cancel payments, create a merchant. Through TestClient, with the fake Stripe."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from merchant_backend import i18n
from merchant_backend.asgi import create_app
from merchant_backend.runtime import Runtime
from merchant_backend.settings import Settings
from merchant_backend.store import datasets, db, inbox, objects, reconcile_state
from merchant_backend.store import merchants as merchant_store
from merchant_backend.stripe import reconcile as rec
from merchant_backend.web import decline_messages, pages_events
from merchant_backend.web.format import Failure
from tests import stripe_factory as sf
from tests.conftest import (
    ADMIN_TOKEN,
    SECRET_KEY,
    SIGNING_SECRET,
    FakeClock,
    MerchantCtx,
    make_merchant,
)
from tests.fake_stripe import FakeStripe
from tests.foundation_helpers import free_port
from tests.stripe_helpers import aimed_at
from tests.web_support import csrf_of, form_fields, hidden, sign_in
from tests.webhook_support import post

NEW_SECRET = "whsec_" + "5e" * 16


@pytest.fixture
def settings(settings: Settings, fake: FakeStripe) -> Settings:
    return aimed_at(settings, fake.url)


@pytest.fixture
def web(app: Any) -> Iterator[TestClient]:
    # https: the test public URL is https, so the session cookie is Secure.
    with TestClient(app, base_url="https://testserver") as c:
        yield c


@pytest.fixture
def signed_in(web: TestClient, stage: MerchantCtx) -> MerchantCtx:
    sign_in(web, stage.token)
    return stage


@pytest.fixture
def unreachable(runtime: Runtime) -> Iterator[TestClient]:
    """The same database, but Stripe's address has nobody listening (refused at once)."""
    settings = runtime.settings.model_copy(
        update={"stripe_api_base": f"http://127.0.0.1:{free_port()}"}
    )
    app = create_app(Runtime(settings, engine=runtime.engine), run_worker=False)
    with TestClient(app, base_url="https://testserver") as c:
        yield c


def _stored(runtime: Runtime, merchant_id: str, env: str = "stage") -> Any:
    with db.read(runtime.engine) as conn:
        return datasets.get(conn, merchant_id, env)


def _secrets(runtime: Runtime, merchant_id: str) -> Any:
    with db.read(runtime.engine) as conn:
        return datasets.secrets(conn, runtime.keys.for_token, merchant_id, "stage")


def _base(m: MerchantCtx) -> str:
    return f"/m/{m.id}/stage"


def _form(web: TestClient, path: str, marker: str) -> dict[str, str]:
    """The hidden fields of the form after ``marker`` (its CSRF token and idempotency key)."""
    r = web.get(path)
    assert r.status_code == 200, r.text
    start = r.text.index(marker)
    return {
        "csrf_token": hidden(r.text[start:], "csrf_token"),
        **(
            {"idempotency_key": hidden(r.text[start:], "idempotency_key")}
            if "idempotency_key" in r.text[start:]
            else {}
        ),
    }


def _pi(runtime: Runtime, merchant_id: str, pi_id: str) -> Any:
    with db.read(runtime.engine) as conn:
        return objects.get(conn, merchant_id, "stage", "payment_intent", pi_id)


def _inbox(runtime: Runtime, merchant_id: str) -> list[Any]:
    with db.read(runtime.engine) as conn:
        items, _ = inbox.list_page(conn, merchant_id, "stage", limit=100)
    return items


# ------------------------------------------------------------------ roll the signing secret


def test_roll_makes_the_new_secret_current_and_keeps_the_old_one_for_the_chosen_time(
    web: TestClient, runtime: Runtime, signed_in: MerchantCtx, clock: FakeClock
) -> None:
    m = signed_in
    evt = sf.event("customer.created", sf.obj("customer"))
    assert post(web, m.id, evt).status_code == 200  # the cache now holds the old secret
    page = f"{_base(m)}/stripe"
    at = clock.freeze()
    r = web.post(
        f"{page}/roll",
        data={
            "csrf_token": csrf_of(web, page),
            "new_signing_secret": f" {NEW_SECRET} ",
            "old_valid_for": "600",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].startswith(f"{page}?done=rolled")
    got = _secrets(runtime, m.id)
    assert got.signing_secret == NEW_SECRET and got.previous_signing_secret == SIGNING_SECRET
    assert got.previous_signing_secret_expires_at == at + 600
    shown = web.get(r.headers["location"]).text
    assert "The new signing secret is in use." in shown
    stored = _stored(runtime, m.id)
    assert f'id="previous-secret">{stored.previous_signing_secret_hint}<' in shown
    assert NEW_SECRET not in shown and SIGNING_SECRET not in shown
    # The secret cache was dropped: both secrets sign accepted webhooks right away.
    evt2 = sf.event("customer.updated", sf.obj("customer"))
    assert post(web, m.id, evt2, secret=NEW_SECRET).status_code == 200
    evt3 = sf.event("customer.updated", sf.obj("customer"))
    assert post(web, m.id, evt3, secret=SIGNING_SECRET).status_code == 200


@pytest.mark.parametrize(
    ("secret", "seconds", "bad_fields"),
    [
        ("not-a-secret", "600", ["f-new-signing-secret"]),
        (NEW_SECRET, "86401", ["f-old-valid-for"]),
        (NEW_SECRET, "ten", ["f-old-valid-for"]),
        ("", "-5", ["f-old-valid-for"]),
    ],
)
def test_a_rejected_roll_shows_the_error_beside_its_field_and_stores_nothing(
    web: TestClient,
    runtime: Runtime,
    signed_in: MerchantCtx,
    secret: str,
    seconds: str,
    bad_fields: list[str],
) -> None:
    page = f"{_base(signed_in)}/stripe"
    before = _stored(runtime, signed_in.id)
    r = web.post(
        f"{page}/roll",
        data={
            "csrf_token": csrf_of(web, page),
            "new_signing_secret": secret,
            "old_valid_for": seconds,
        },
    )
    assert r.status_code == 422
    for field in bad_fields:
        assert re.search(rf'id="{field}"[^>]*\n?[^>]*aria-invalid="true"', r.text), field
        assert f'id="{field}-error"' in r.text
    assert 'id="f-account-id-error"' not in r.text  # the data set form is not blamed
    # A rejected secret is never put back into the page.
    assert NEW_SECRET not in r.text and 'value="not-a-secret"' not in r.text
    assert _stored(runtime, signed_in.id) == before


# ------------------------------------------------------------------ delete the data set


def test_delete_needs_the_confirmation_then_removes_the_data_set_and_webhooks_are_refused(
    web: TestClient, runtime: Runtime, signed_in: MerchantCtx
) -> None:
    m = signed_in
    page = f"{_base(m)}/stripe"
    assert post(web, m.id, sf.event("customer.created", sf.obj("customer"))).status_code == 200
    r = web.post(f"{page}/delete", data={"csrf_token": csrf_of(web, page)})
    assert r.status_code == 422
    assert 'id="f-understood-error"' in r.text and "nothing was deleted" in r.text
    assert _stored(runtime, m.id) is not None

    r = web.post(
        f"{page}/delete",
        data={"csrf_token": csrf_of(web, page), "understood": "yes"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == f"{page}?done=deleted"
    assert _stored(runtime, m.id) is None
    assert "webhooks for this environment are refused" in web.get(r.headers["location"]).text
    # The cached secret is gone with it: the next delivery is refused at once.
    refused = post(web, m.id, sf.event("customer.updated", sf.obj("customer")))
    assert refused.status_code != 200
    # A second delete (another tab) finds nothing to delete: 404.
    again = web.post(f"{page}/delete", data={"csrf_token": csrf_of(web, page), "understood": "yes"})
    assert again.status_code == 404


# ------------------------------------------------------------------ fetch missed events


def _history(fake: FakeStripe) -> list[dict[str, Any]]:
    at = int(time.time()) - 3600
    pi = sf.obj("payment_intent", id="pi_WebReconcile1", status="requires_payment_method")
    made = [
        sf.event("payment_intent.created", pi, created=at),
        sf.event("charge.succeeded", sf.obj("charge"), created=at + 1),
        sf.event("customer.updated", sf.obj("customer", id="cus_WebRec1"), created=at + 2),
        sf.event("payment_intent.succeeded", {**pi, "status": "succeeded"}, created=at + 3),
    ]
    fake.events.extend(made)
    return made


def test_fetch_missed_events_inserts_them_and_says_what_it_found(
    web: TestClient, runtime: Runtime, fake: FakeStripe, signed_in: MerchantCtx
) -> None:
    m = signed_in
    made = _history(fake)
    post(web, m.id, made[0])  # one of them did arrive as a webhook
    events_page = f"{_base(m)}/events"
    r = web.post(
        f"{events_page}/reconcile",
        data={"csrf_token": csrf_of(web, events_page)},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == f"{events_page}?reconciled=1"
    shown = web.get(r.headers["location"]).text
    assert "Fetched 4 events from Stripe: 2 new, 1 already known, 1 of types" in shown
    sources = {e.event_id: e.source for e in _inbox(runtime, m.id)}
    assert sources == {
        made[0]["id"]: "webhook",
        made[2]["id"]: "reconcile",
        made[3]["id"]: "reconcile",
    }


def test_fetch_from_the_browser_stops_after_its_page_budget_and_goes_on_next_time(
    web: TestClient,
    runtime: Runtime,
    fake: FakeStripe,
    signed_in: MerchantCtx,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(rec, "PAGE_SIZE", 1)
    monkeypatch.setattr(pages_events, "WEB_RECONCILE_PAGES", 2)
    _history(fake)
    events_page = f"{_base(signed_in)}/events"
    r = web.post(f"{events_page}/reconcile", data={"csrf_token": csrf_of(web, events_page)})
    assert r.status_code == 200
    assert "Fetched 2 events from Stripe so far" in r.text and "fetch again to continue" in r.text
    assert len(fake.paths("GET")) == 2
    r = web.post(f"{events_page}/reconcile", data={"csrf_token": csrf_of(web, events_page)})
    assert "Fetched 4 events from Stripe so far" in r.text
    r = web.post(f"{events_page}/reconcile", data={"csrf_token": csrf_of(web, events_page)})
    # The last page had nothing more: the run finished and reports its whole window.
    assert "Fetched 4 events from Stripe: 3 new, 0 already known" in r.text
    assert len(_inbox(runtime, signed_in.id)) == 3


def test_fetch_with_stripe_unreachable_redirects_with_the_reason_and_changes_nothing(
    unreachable: TestClient, runtime: Runtime, stage: MerchantCtx
) -> None:
    sign_in(unreachable, stage.token)
    events_page = f"{_base(stage)}/events"
    posted = unreachable.post(
        f"{events_page}/reconcile",
        data={"csrf_token": csrf_of(unreachable, events_page)},
        follow_redirects=False,
    )
    # POST/redirect/GET: reloading the page that says what went wrong fetches nothing.
    assert posted.status_code == 303 and posted.headers["location"] == events_page
    r = unreachable.get(events_page)
    assert "Fetching missed events did not finish: could not reach Stripe" in r.text
    assert SECRET_KEY not in r.text
    assert _inbox(runtime, stage.id) == []


def test_on_a_german_page_a_failed_stripe_call_says_what_it_means_with_the_facts_beside_it(
    unreachable: TestClient, runtime: Runtime, stage: MerchantCtx
) -> None:
    sign_in(unreachable, stage.token)
    unreachable.cookies.set("mb_lang", "de")
    events_page = f"{_base(stage)}/events"
    # Followed to the events page, which says it once.
    r = unreachable.post(
        f"{events_page}/reconcile", data={"csrf_token": csrf_of(unreachable, events_page)}
    )
    said = "Stripe war nicht erreichbar: Prüfen Sie das Netz und MERCHANT_BACKEND_STRIPE_API_BASE"
    # The facts stay English, marked so (a screen reader reads them in English).
    assert f'{said} <span lang="en">(could not reach Stripe at http://127.0.0.1:' in r.text


def test_fetch_while_another_run_holds_the_data_set_says_so_and_asks_stripe_nothing(
    web: TestClient, runtime: Runtime, fake: FakeStripe, signed_in: MerchantCtx
) -> None:
    with db.write(runtime.engine) as conn:
        state = reconcile_state.take_lease(
            conn, signed_in.id, "stage", "cli-1", "the CLI", time.time()
        )
        reconcile_state.save_state(conn, signed_in.id, "stage", state)
    _history(fake)
    events_page = f"{_base(signed_in)}/events"
    r = web.post(f"{events_page}/reconcile", data={"csrf_token": csrf_of(web, events_page)})
    assert r.status_code == 200 and r.url.path == events_page  # after the redirect
    assert "is already running" in r.text and "by the CLI" in r.text
    assert fake.requests == [] and _inbox(runtime, signed_in.id) == []


# ------------------------------------------------------------------ payments


def _confirmation(html: str, form_id: str = "confirm-form") -> dict[str, str]:
    """The hidden fields of the confirmation page's form (``confirm-form`` or ``edit-form``)."""
    start = html.index(f'id="{form_id}"')
    part = html[start : html.index("</form>", start)]
    return dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)"', part))


def _new_payment(web: TestClient, m: MerchantCtx, **fields: str) -> tuple[Any, dict[str, str]]:
    """Fills in the form, then confirms the amount shown (the page's two steps)."""
    path = f"{_base(m)}/payments/new"
    data = {**_form(web, path, 'id="payment-form"'), **fields}
    shown = web.post(path, data=data, follow_redirects=False)
    if shown.status_code != 200:
        return shown, data
    assert 'id="payment-confirm"' in shown.text, shown.text
    confirm = _confirmation(shown.text)
    assert confirm["idempotency_key"] == data["idempotency_key"]  # carried through
    return web.post(path, data=confirm, follow_redirects=False), confirm


def test_new_payment_is_created_and_confirmed_once_even_when_sent_twice(
    web: TestClient, runtime: Runtime, fake: FakeStripe, signed_in: MerchantCtx
) -> None:
    form = web.get(f"{_base(signed_in)}/payments/new").text
    assert 'value="pm_card_visa"' in form  # test mode's handy default
    r, data = _new_payment(
        web,
        signed_in,
        amount="12.50",
        currency="EUR",
        payment_method="pm_card_visa",
        capture_method="automatic",
        description="Order 7",
    )
    assert r.status_code == 303, r.text
    pi_id = r.headers["location"].split("/payments/")[1].split("?")[0]
    again = web.post(f"{_base(signed_in)}/payments/new", data=data, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == r.headers["location"]
    assert list(fake.payment_intents) == [pi_id]
    create = fake.requests[0]
    assert create.form["amount"] == ["1250"] and create.form["currency"] == ["eur"]
    assert create.form["description"] == ["Order 7"]
    assert create.headers["idempotency-key"] == data["idempotency_key"]
    shown = web.get(r.headers["location"]).text
    assert "The payment is created." in shown and "€12.50" in shown
    assert _pi(runtime, signed_in.id, pi_id).data["status"] == "succeeded"


def test_each_shown_payment_form_has_its_own_idempotency_key(
    web: TestClient, signed_in: MerchantCtx
) -> None:
    path = f"{_base(signed_in)}/payments/new"
    first = _form(web, path, 'id="payment-form"')["idempotency_key"]
    second = _form(web, path, 'id="payment-form"')["idempotency_key"]
    assert first != second and first.startswith("web-")


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"amount": "", "currency": "usd"}, ["amount"]),
        ({"amount": "12.345", "currency": "usd"}, ["amount"]),
        ({"amount": "5.5", "currency": "jpy"}, ["amount"]),
        ({"amount": "10", "currency": "dollars"}, ["currency"]),
        ({"amount": "10", "currency": "xyz"}, ["currency"]),  # not a currency Stripe lists
        ({"amount": "12,50", "currency": "eur"}, ["amount"]),
        ({"amount": "1.250,00", "currency": "eur"}, ["amount"]),
        ({"amount": "-5", "currency": "eur"}, ["amount"]),
        ({"amount": "1000000", "currency": "eur"}, ["amount"]),
        ({"amount": "10", "currency": "usd", "customer": "bob"}, ["customer"]),
        ({"amount": "10", "currency": "usd", "payment_method": "visa"}, ["payment_method"]),
        ({"amount": "10", "currency": "usd", "capture_method": "later"}, ["capture_method"]),
    ],
)
def test_a_rejected_payment_form_shows_errors_beside_fields_and_sends_nothing(
    web: TestClient,
    runtime: Runtime,
    fake: FakeStripe,
    signed_in: MerchantCtx,
    fields: dict[str, str],
    bad: list[str],
) -> None:
    r, _ = _new_payment(web, signed_in, **{"payment_method": "", **fields})
    assert r.status_code == 422
    for name in bad:
        dom = "f-" + name.replace("_", "-")
        assert f'id="{dom}-error"' in r.text, name
    assert "Nothing was sent to Stripe" in r.text
    assert fake.requests == []


def _declined_payment(web: TestClient, m: MerchantCtx) -> tuple[Any, str]:
    """A payment with Stripe's test card for insufficient funds: the answer, and its part
    from the decline message on."""
    r, _ = _new_payment(
        web,
        m,
        amount="10",
        currency="usd",
        payment_method="pm_card_visa_chargeDeclinedInsufficientFunds",
    )
    assert r.status_code == 402
    return r, r.text[r.text.index('id="payment-result"') :]


def test_a_declined_card_shows_the_decline_beside_the_form_with_the_payment(
    web: TestClient, runtime: Runtime, signed_in: MerchantCtx
) -> None:
    r, result = _declined_payment(web, signed_in)
    assert "Declined:" in result and "Your card has insufficient funds." in result
    pi_id = re.search(r'/payments/(pi_[A-Za-z0-9]+)"', result)
    assert pi_id is not None
    assert _pi(runtime, signed_in.id, pi_id.group(1)).data["status"] == "requires_payment_method"
    # The form is shown again with what was typed and a fresh key for the next attempt.
    assert 'value="10"' in r.text and 'name="idempotency_key"' in r.text


def test_a_german_page_says_why_the_card_was_declined_with_stripes_words_beside_it(
    web: TestClient, runtime: Runtime, signed_in: MerchantCtx
) -> None:
    web.cookies.set("mb_lang", "de")
    _r, result = _declined_payment(web, signed_in)
    # Chosen by Stripe's decline_code (insufficient_funds), Stripe's own words kept beside it.
    assert "Die Karte ist nicht ausreichend gedeckt." in result
    assert '<span class="small muted" lang="en">Your card has insufficient funds.</span>' in result
    pi_id = re.search(r'/payments/(pi_[A-Za-z0-9]+)"', result)
    assert pi_id is not None
    shown = web.get(f"{_base(signed_in)}/payments/{pi_id.group(1)}").text
    assert "Die Karte ist nicht ausreichend gedeckt." in shown  # the synced last_payment_error


def test_a_decline_code_nobody_listed_shows_stripes_words() -> None:
    with i18n.use(i18n.Reader("de")):
        unknown = decline_messages.decline("Your card was declined by a moon.", "x", "moon")
        known = decline_messages.decline("Your card has expired.", "card_declined", "expired_card")
    assert unknown == Failure("Your card was declined by a moon.")
    assert known == Failure("Die Karte ist abgelaufen.", "Your card has expired.")
    # English pages show Stripe's words as they are.
    assert decline_messages.decline("Your card has expired.", "x", "expired_card") == Failure(
        "Your card has expired."
    )


def _manual_payment(web: TestClient, m: MerchantCtx) -> str:
    r, _ = _new_payment(
        web,
        m,
        amount="20",
        currency="usd",
        payment_method="pm_card_visa",
        capture_method="manual",
    )
    assert r.status_code == 303, r.text
    return str(r.headers["location"].split("/payments/")[1].split("?")[0])


def test_capture_from_the_payment_page(
    web: TestClient, runtime: Runtime, fake: FakeStripe, signed_in: MerchantCtx
) -> None:
    pi_id = _manual_payment(web, signed_in)
    path = f"{_base(signed_in)}/payments/{pi_id}"
    shown = web.get(path).text
    assert "Capture US$20.00" in shown and "Cancel payment" in shown
    data = _form(web, path, f'{pi_id}/capture"')
    r = web.post(f"{path}/capture", data=data, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"{path}?done=captured"
    assert fake.requests[-1].path == f"/v1/payment_intents/{pi_id}/capture"
    assert _pi(runtime, signed_in.id, pi_id).data["status"] == "succeeded"
    after = web.get(r.headers["location"]).text
    assert "The payment is captured." in after
    assert "/capture" not in after and "Cancel payment" not in after


def test_cancel_from_the_payment_page(
    web: TestClient, runtime: Runtime, fake: FakeStripe, signed_in: MerchantCtx
) -> None:
    pi_id = _manual_payment(web, signed_in)
    path = f"{_base(signed_in)}/payments/{pi_id}"
    data = _form(web, path, f'{pi_id}/cancel"')
    r = web.post(f"{path}/cancel", data=data, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"{path}?done=canceled"
    assert fake.requests[-1].path == f"/v1/payment_intents/{pi_id}/cancel"
    assert _pi(runtime, signed_in.id, pi_id).data["status"] == "canceled"
    assert "The payment is canceled." in web.get(r.headers["location"]).text


def test_capture_with_stripe_unreachable_says_so_and_the_payment_stays_as_it_was(
    web: TestClient, unreachable: TestClient, runtime: Runtime, signed_in: MerchantCtx
) -> None:
    pi_id = _manual_payment(web, signed_in)
    before = _pi(runtime, signed_in.id, pi_id)
    sign_in(unreachable, signed_in.token)
    path = f"{_base(signed_in)}/payments/{pi_id}"
    for action in ("capture", "cancel"):
        posted = unreachable.post(
            f"{path}/{action}",
            data=_form(unreachable, path, f'{pi_id}/{action}"'),
            follow_redirects=False,
        )
        assert posted.status_code == 303 and posted.headers["location"] == path, action
        r = unreachable.get(path)
        assert f"The payment was not {action}" in r.text and "could not reach Stripe" in r.text
        assert f"The payment was not {action}" not in unreachable.get(path).text  # once
    r, _ = _new_payment(unreachable, signed_in, amount="5", currency="usd")
    assert r.status_code == 502 and "The payment was not created: could not reach" in r.text
    assert _pi(runtime, signed_in.id, pi_id) == before


def test_unknown_payment_actions_are_404_and_reach_no_stripe(
    web: TestClient, fake: FakeStripe, signed_in: MerchantCtx
) -> None:
    page = f"{_base(signed_in)}/payments"
    token = csrf_of(web, page)
    for action in ("capture", "cancel"):
        r = web.post(f"{page}/pi_NotOurs123/{action}", data={"csrf_token": token})
        assert r.status_code == 404
    assert fake.requests == []


# ------------------------------------------------------------------ CSRF and other merchants


def _action_posts(m: MerchantCtx, pi_id: str) -> list[tuple[str, dict[str, str]]]:
    base = _base(m)
    return [
        (f"{base}/stripe/roll", {"new_signing_secret": NEW_SECRET, "old_valid_for": "0"}),
        (f"{base}/stripe/delete", {"understood": "yes"}),
        (f"{base}/events/reconcile", {}),
        (f"{base}/payments/new", {"amount": "1", "currency": "usd"}),
        (f"{base}/payments/{pi_id}/capture", {}),
        (f"{base}/payments/{pi_id}/cancel", {}),
    ]


def test_every_action_without_the_csrf_token_is_403_and_changes_nothing(
    web: TestClient, runtime: Runtime, fake: FakeStripe, signed_in: MerchantCtx
) -> None:
    pi_id = _manual_payment(web, signed_in)
    _history(fake)
    sent = len(fake.requests)
    before = (_stored(runtime, signed_in.id), _pi(runtime, signed_in.id, pi_id))
    posts = [*_action_posts(signed_in, pi_id), ("/merchants", {"name": "Forged"})]
    for path, data in posts:
        for token in (None, "", "not-the-token"):
            body = dict(data) if token is None else {**data, "csrf_token": token}
            r = web.post(path, data=body, follow_redirects=False)
            assert r.status_code == 403, (path, token, r.status_code)
    assert (_stored(runtime, signed_in.id), _pi(runtime, signed_in.id, pi_id)) == before
    assert len(fake.requests) == sent and _inbox(runtime, signed_in.id) == []
    with db.read(runtime.engine) as conn:
        assert [x.name for x in merchant_store.list_all(conn)] == ["Test Shop"]


def test_another_merchants_actions_are_404_and_change_nothing(
    web: TestClient, runtime: Runtime, fake: FakeStripe, signed_in: MerchantCtx
) -> None:
    pi_id = _manual_payment(web, signed_in)
    sent = len(fake.requests)
    before = (_stored(runtime, signed_in.id), _pi(runtime, signed_in.id, pi_id))
    other = make_merchant(runtime, "Other Shop")
    with TestClient(web.app, base_url="https://testserver") as intruder:
        sign_in(intruder, other.token)
        token = csrf_of(intruder, _base(other))
        for path, data in _action_posts(signed_in, pi_id):
            r = intruder.post(path, data={**data, "csrf_token": token})
            assert r.status_code == 404, path
        # A merchant is no operator: creating merchants is not there for it either.
        r = intruder.post("/merchants", data={"name": "Mine", "csrf_token": token})
        assert r.status_code == 404
    assert (_stored(runtime, signed_in.id), _pi(runtime, signed_in.id, pi_id)) == before
    assert len(fake.requests) == sent
    with db.read(runtime.engine) as conn:
        assert len(merchant_store.list_all(conn)) == 2


# ------------------------------------------------------------------ create a merchant


def test_admin_creates_a_merchant_and_sees_its_token_once_uncached(
    web: TestClient, runtime: Runtime
) -> None:
    sign_in(web, ADMIN_TOKEN)
    listing = web.get("/merchants").text
    assert 'id="create-merchant-form"' in listing
    form = form_fields(listing, "/merchants")
    r = web.post("/merchants", data={**form, "name": "  Corner Café "})
    # Post/redirect/get: the token is shown by the page the post redirects to.
    assert [h.status_code for h in r.history] == [303]
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    assert "it is not shown again" in r.text
    token = re.search(r'id="api-token" type="text" readonly value="([^"]+)"', r.text)
    assert token is not None and token.group(1).startswith("mbt")
    with db.read(runtime.engine) as conn:
        [made] = merchant_store.list_all(conn)
        assert merchant_store.by_token(conn, token.group(1)) == made
    assert made.name == "Corner Café"
    assert str(r.url).endswith(f"/merchants/{made.id}/token")
    assert token.group(1) not in r.history[0].headers["location"]
    assert token.group(1) not in str(r.history[0].headers.get("set-cookie"))
    # Not in any other page: the list shows the merchant, not its token.
    after = web.get("/merchants").text
    assert made.id in after and token.group(1) not in after
    # The token signs the new merchant in.
    with TestClient(web.app, base_url="https://testserver") as newcomer:
        assert sign_in(newcomer, token.group(1)).headers["location"] == f"/m/{made.id}/stage"


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_a_rejected_merchant_name_shows_beside_the_field_and_creates_nothing(
    web: TestClient, runtime: Runtime, name: str
) -> None:
    sign_in(web, ADMIN_TOKEN)
    form = form_fields(web.get("/merchants").text, "/merchants")
    r = web.post("/merchants", data={**form, "name": name})
    assert r.status_code == 422
    assert 'id="f-name-error"' in r.text and 'aria-invalid="true"' in r.text
    assert "api-token" not in r.text
    with db.read(runtime.engine) as conn:
        assert merchant_store.list_all(conn) == []


def test_the_amount_is_shown_as_it_will_be_charged_and_nothing_is_sent_before_confirming(
    web: TestClient, fake: FakeStripe, signed_in: MerchantCtx
) -> None:
    path = f"{_base(signed_in)}/payments/new"
    data = {
        **_form(web, path, 'id="payment-form"'),
        "amount": "1,250.00",
        "currency": "EUR",
        "payment_method": "pm_card_visa",
        "capture_method": "automatic",
    }
    shown = web.post(path, data=data)
    assert shown.status_code == 200
    assert 'id="charged-amount">€1,250.00<' in shown.text
    assert "Charge €1,250.00" in shown.text and "You typed “1,250.00”" in shown.text
    assert fake.requests == []
    # "Change" shows the form again with what was typed; still nothing is sent.
    back = web.post(path, data=_confirmation(shown.text, "edit-form"))
    assert back.status_code == 200 and 'id="payment-form"' in back.text
    assert 'value="1,250.00"' in back.text and 'value="EUR"' in back.text
    assert fake.requests == []


def test_a_confirmation_that_does_not_match_the_form_is_shown_again_not_charged(
    web: TestClient, fake: FakeStripe, signed_in: MerchantCtx
) -> None:
    path = f"{_base(signed_in)}/payments/new"
    data = {**_form(web, path, 'id="payment-form"'), "amount": "12.50", "currency": "eur"}
    confirm = _confirmation(web.post(path, data=data).text)
    for changed in ({"confirmed_amount": "125000"}, {"amount": "125.00"}, {"idempotency_key": ""}):
        again = web.post(path, data={**confirm, **changed}, follow_redirects=False)
        assert again.status_code == 200 and 'id="payment-confirm"' in again.text, changed
    assert fake.requests == []
    done = web.post(path, data=confirm, follow_redirects=False)
    assert done.status_code == 303
    assert [r.form["amount"] for r in fake.requests] == [["1250"]]


def test_a_three_decimal_amount_is_confirmed_with_two_decimals_and_its_ambiguous_form_refused(
    web: TestClient, fake: FakeStripe, signed_in: MerchantCtx
) -> None:
    """``1.250`` KWD is 1.25 KWD in English and 1,250 KWD in German: refused, naming both. The
    confirmation writes ``KWD 1.25``, never the ``1.250`` a German reader takes for 1,250."""
    path = f"{_base(signed_in)}/payments/new"
    data = {**_form(web, path, 'id="payment-form"'), "currency": "kwd"}
    refused = web.post(path, data={**data, "amount": "1.250"})
    assert refused.status_code == 422
    error = refused.text.split('id="f-amount-error">')[1].split("</p>")[0]
    assert error == (
        "“1.250” could mean KWD\u00a01.25 or KWD\u00a01,250.00. Write 1.25 for the first or "
        "1,250.00 for the second."
    )
    shown = web.post(path, data={**data, "amount": "1.25"})
    assert shown.status_code == 200
    assert 'id="charged-amount">KWD\u00a01.25<' in shown.text
    assert _confirmation(shown.text)["confirmed_amount"] == "1250"
    assert fake.requests == []


def test_an_amount_written_the_german_way_on_the_english_page_is_refused_not_multiplied(
    web: TestClient, fake: FakeStripe, signed_in: MerchantCtx
) -> None:
    """Issue 12: ``12,50`` EUR was charged as 1,250.00 EUR (the comma was dropped)."""
    r, _ = _new_payment(
        web, signed_in, amount="12,50", currency="eur", payment_method="pm_card_visa"
    )
    assert r.status_code == 422, r.text
    error = r.text[r.text.index('id="f-amount-error"') :]
    assert error.startswith('id="f-amount-error">Write the amount in digits with “.” before')
    assert fake.requests == [] and fake.payment_intents == {}
