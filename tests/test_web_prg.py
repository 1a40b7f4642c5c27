"""POST/redirect/GET on every web action: each form post that does something answers 303 to
the page that shows the result, and loading that page (a reload) asks Stripe nothing and
changes nothing. Invalid input is the exception by design: the form comes back with its
errors (422) and nothing was done, so a reload repeats nothing either. Creating a merchant and
rotating its token redirect too, to a page that shows the new token once
(tests/test_web_token_reveal.py)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from merchant_backend.runtime import Runtime
from tests import stripe_factory as sf
from tests.conftest import SECRET_KEY, MerchantCtx
from tests.fake_stripe import FakeStripe
from tests.foundation_helpers import rows
from tests.stripe_helpers import ACCOUNT
from tests.test_web_actions import (  # noqa: F401  (fixtures and helpers)
    _base,
    _form,
    _history,
    _manual_payment,
    settings,
    signed_in,
    web,
)
from tests.web_support import csrf_of
from tests.webhook_support import post

NEW_SECRET = "whsec_" + "7a" * 16


def redirected_then_quiet(
    web: TestClient, runtime: Runtime, fake: FakeStripe, path: str, data: dict[str, str]
) -> str:
    """POST ``path``: a 303 whose target, loaded twice, sends nothing and stores nothing."""
    r = web.post(path, data=data, follow_redirects=False)
    assert r.status_code == 303, (path, r.status_code, r.text[:500])
    target = r.headers["location"].split("#", 1)[0]
    asked = len(fake.requests)
    shown = web.get(target)
    assert shown.status_code == 200, (target, shown.status_code)
    snapshot = rows(runtime.engine)
    assert web.get(target).status_code == 200  # the reload
    assert len(fake.requests) == asked, f"loading {target} asked Stripe"
    assert rows(runtime.engine) == snapshot, f"loading {target} changed stored data"
    return shown.text


def test_every_web_action_redirects(
    web: TestClient, runtime: Runtime, fake: FakeStripe, signed_in: MerchantCtx
) -> None:
    m = signed_in
    base = _base(m)
    stripe_page = f"{base}/stripe"
    fake.add_key(SECRET_KEY, ACCOUNT)

    def token(page: str) -> dict[str, str]:
        return {"csrf_token": csrf_of(web, page)}

    # The data set: save (a partial change), create the webhook, verify, roll.
    redirected_then_quiet(
        web, runtime, fake, stripe_page, {**token(stripe_page), "account_id": ACCOUNT}
    )
    shown = redirected_then_quiet(web, runtime, fake, f"{stripe_page}/webhook", token(stripe_page))
    assert "Created webhook endpoint" in shown
    redirected_then_quiet(web, runtime, fake, f"{stripe_page}/verify", token(stripe_page))
    # A verify Stripe stops (5xx) is also a redirect; its report is stored, not re-asked.
    fake.fail_next(503, {"error": {"type": "api_error", "message": "unavailable"}})
    shown = redirected_then_quiet(web, runtime, fake, f"{stripe_page}/verify", token(stripe_page))
    assert "Verifying did not finish" in shown
    redirected_then_quiet(
        web,
        runtime,
        fake,
        f"{stripe_page}/roll",
        {**token(stripe_page), "new_signing_secret": NEW_SECRET, "old_valid_for": "60"},
    )

    # Events: fetch missed ones, replay one.
    _history(fake)
    events = f"{base}/events"
    redirected_then_quiet(web, runtime, fake, f"{events}/reconcile", token(events))
    evt = sf.event("customer.updated", sf.obj("customer", id="cus_Prg1"))
    assert post(web, m.id, evt, secret=NEW_SECRET).status_code == 200  # the rolled-in secret
    redirected_then_quiet(web, runtime, fake, f"{events}/{evt['id']}/replay", token(events))

    # Payments: the confirmed create, capture, cancel.
    pi_id = _manual_payment(web, m)  # asserts the create's 303 itself
    payment = f"{base}/payments/{pi_id}"
    redirected_then_quiet(
        web, runtime, fake, f"{payment}/capture", _form(web, payment, f'{pi_id}/capture"')
    )
    other = _manual_payment(web, m)
    payment = f"{base}/payments/{other}"
    redirected_then_quiet(
        web, runtime, fake, f"{payment}/cancel", _form(web, payment, f'{other}/cancel"')
    )

    # Delete the data set last.
    redirected_then_quiet(
        web, runtime, fake, f"{stripe_page}/delete", {**token(stripe_page), "understood": "yes"}
    )


def test_invalid_input_comes_back_with_its_errors_and_does_nothing(
    web: TestClient, runtime: Runtime, fake: FakeStripe, signed_in: MerchantCtx
) -> None:
    page = f"{_base(signed_in)}/stripe"
    snapshot = rows(runtime.engine)
    r = web.post(
        page,
        data={"csrf_token": csrf_of(web, page), "publishable_key": "pk_live_" + "x" * 24},
    )
    assert r.status_code == 422 and "live key" in r.text
    assert rows(runtime.engine) == snapshot and fake.requests == []
