"""The web pages without a browser: sessions, cookies, CSRF, headers, access, page contents."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from merchant_backend.runtime import Runtime
from merchant_backend.store import datasets, db, inbox, web_sessions
from merchant_backend.store.schema import web_sessions as web_sessions_table
from merchant_backend.sync.worker import Worker
from tests import stripe_factory as sf
from tests.conftest import (
    ADMIN_TOKEN,
    LIVE_SECRET_KEY,
    LIVE_SIGNING_SECRET,
    SECRET_KEY,
    SIGNING_SECRET,
    MerchantCtx,
    add_data_set,
    make_merchant,
)
from tests.web_support import csrf_of, hidden, sign_in
from tests.webhook_support import make_dead, post_ok

VALID_STAGE = {
    "account_id": "acct_1WebShop",
    "publishable_key": "pk_test_TYooMQauvdEDq54NiTphI7jx",
    "secret_key": "sk_test_" + "a1b2c3d4" * 3 + "7777",
    "webhook_signing_secret": "",
}


@pytest.fixture
def web(app: Any) -> Iterator[TestClient]:
    # The test settings' public URL is https, so cookies are Secure: talk https to keep them.
    with TestClient(app, base_url="https://testserver") as c:
        yield c


def _stored(runtime: Runtime, merchant_id: str, env: str = "stage") -> Any:
    with db.read(runtime.engine) as conn:
        return datasets.get(conn, merchant_id, env)


def _state(runtime: Runtime, merchant_id: str, event_id: str) -> str:
    with db.read(runtime.engine) as conn:
        entry = inbox.get(conn, merchant_id, "stage", event_id)
    assert entry is not None
    return entry.state


# ------------------------------------------------------------------ sign-in and the cookie


def test_sign_in_sets_a_strict_httponly_secure_host_cookie_and_stores_only_a_hash(
    web: TestClient, runtime: Runtime, merchant: MerchantCtx
) -> None:
    r = sign_in(web, merchant.token)
    assert r.headers["location"] == f"/m/{merchant.id}/stage"
    cookies = [c for c in r.headers.get_list("set-cookie") if c.startswith("__Host-mb_session=")]
    assert len(cookies) == 1
    attrs = [a.strip().lower() for a in cookies[0].split(";")]
    assert "httponly" in attrs and "secure" in attrs and "samesite=strict" in attrs
    assert "path=/" in attrs and not any(a.startswith("domain") for a in attrs)
    session_id = cookies[0].split(";")[0].split("=", 1)[1]
    assert merchant.token not in cookies[0]
    with db.read(runtime.engine) as conn:
        rows = conn.execute(select(web_sessions_table)).all()
    assert [r.id_hash for r in rows] == [web_sessions.hash_id(session_id)]
    assert session_id not in repr(rows)
    assert rows[0].merchant_id == merchant.id and not rows[0].is_admin
    assert web.get(f"/m/{merchant.id}/stage").status_code == 200


def test_plain_http_public_url_drops_secure_but_keeps_httponly_and_strict(
    runtime: Runtime, merchant: MerchantCtx
) -> None:
    from merchant_backend.asgi import create_app

    runtime.settings.public_url = "http://127.0.0.1:8000"
    with TestClient(create_app(runtime, run_worker=False)) as c:
        r = sign_in(c, merchant.token)
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("mb_session="))
    attrs = [a.strip().lower() for a in cookie.split(";")]
    assert "httponly" in attrs and "samesite=strict" in attrs and "secure" not in attrs


def test_a_wrong_token_is_refused_and_not_echoed(web: TestClient, merchant: MerchantCtx) -> None:
    form = web.get("/sign-in")
    wrong = merchant.token[:-4] + "zzzz"
    r = web.post(
        "/sign-in",
        data={"token": wrong, "sign_in_token": hidden(form.text, "sign_in_token")},
        follow_redirects=False,
    )
    assert r.status_code == 401
    assert "not valid" in r.text
    assert wrong not in r.text
    assert not any("mb_session=" in c for c in r.headers.get_list("set-cookie"))
    assert web.get(f"/m/{merchant.id}/stage", follow_redirects=False).status_code == 303


def test_sign_in_form_needs_its_own_double_submit_token(
    web: TestClient, merchant: MerchantCtx
) -> None:
    web.get("/sign-in")
    r = web.post(
        "/sign-in",
        data={"token": merchant.token, "sign_in_token": "forged"},
        follow_redirects=False,
    )
    assert r.status_code == 403
    assert not any("mb_session=" in c for c in r.headers.get_list("set-cookie"))


def test_pages_without_a_session_send_to_sign_in_and_come_back_after(
    web: TestClient, merchant: MerchantCtx
) -> None:
    r = web.get(f"/m/{merchant.id}/stage/payments?status=succeeded", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/sign-in?next=")
    r = sign_in(web, merchant.token, next_path=f"/m/{merchant.id}/stage/payments?status=succeeded")
    assert r.headers["location"] == f"/m/{merchant.id}/stage/payments?status=succeeded"
    # An open redirect is not possible through ``next``.
    web.cookies.clear()
    r = sign_in(web, merchant.token, next_path="//evil.example/x")
    assert r.headers["location"] == f"/m/{merchant.id}/stage"


def test_sign_out_deletes_the_session_so_the_old_cookie_is_refused(
    web: TestClient, runtime: Runtime, merchant: MerchantCtx
) -> None:
    r = sign_in(web, merchant.token)
    cookie = r.headers["set-cookie"].split(";")[0]
    csrf = csrf_of(web, f"/m/{merchant.id}/stage")
    out = web.post("/sign-out", data={"csrf_token": csrf}, follow_redirects=False)
    assert out.status_code == 303
    assert "Max-Age=0" in out.headers["set-cookie"] or "max-age=0" in out.headers["set-cookie"]
    with db.read(runtime.engine) as conn:
        assert conn.execute(select(web_sessions_table)).all() == []
    web.cookies.clear()
    # The browser forgot the cookie, but someone who copied it gets nothing either.
    r = web.get(f"/m/{merchant.id}/stage", headers={"Cookie": cookie}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/sign-in")


def test_an_expired_session_is_refused(
    web: TestClient, runtime: Runtime, merchant: MerchantCtx
) -> None:
    sign_in(web, merchant.token)
    with db.write(runtime.engine) as conn:
        conn.execute(update(web_sessions_table).values(expires_at=time.time() - 1))
    r = web.get(f"/m/{merchant.id}/stage", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/sign-in")


# ------------------------------------------------------------------ CSRF


def test_every_form_post_without_the_session_csrf_token_is_rejected(
    web: TestClient, runtime: Runtime, connected: MerchantCtx, worker: Worker
) -> None:
    evt = sf.event("payment_intent.succeeded", sf.obj("payment_intent", status="succeeded"))
    post_ok(web, connected.id, evt)
    worker.drain()
    sign_in(web, connected.token)
    before = _stored(runtime, connected.id)
    base = f"/m/{connected.id}/stage"
    posts = [
        (f"{base}/stripe", {**VALID_STAGE, "account_id": "acct_1Changed"}),
        (f"{base}/stripe/verify", {}),
        (f"{base}/stripe/webhook", {}),
        (f"{base}/events/{evt['id']}/replay", {}),
        ("/sign-out", {}),
    ]
    for path, data in posts:
        for token in (None, "", "not-the-token"):
            body = dict(data) if token is None else {**data, "csrf_token": token}
            r = web.post(path, data=body, follow_redirects=False)
            assert r.status_code == 403, (path, token, r.status_code)
            assert "form has expired" in r.text
    assert _stored(runtime, connected.id) == before
    assert _state(runtime, connected.id, evt["id"]) == "applied"
    # Still signed in: the forged sign-out did nothing.
    assert web.get(base, follow_redirects=False).status_code == 200


def test_another_sessions_csrf_token_does_not_work(
    app: Any, runtime: Runtime, merchant: MerchantCtx
) -> None:
    with (
        TestClient(app, base_url="https://testserver") as a,
        TestClient(app, base_url="https://testserver") as b,
    ):
        sign_in(a, merchant.token)
        sign_in(b, merchant.token)
        token_b = csrf_of(b, f"/m/{merchant.id}/stage")
        r = a.post(
            f"/m/{merchant.id}/stage/stripe",
            data={**VALID_STAGE, "csrf_token": token_b},
            follow_redirects=False,
        )
        assert r.status_code == 403
    assert _stored(runtime, merchant.id) is None


# ------------------------------------------------------------------ headers


def test_pages_redirects_and_errors_carry_csp_and_security_headers(
    web: TestClient, merchant: MerchantCtx
) -> None:
    sign_in(web, merchant.token)
    responses = [
        web.get("/sign-in", follow_redirects=False),  # redirect: already signed in
        web.get(f"/m/{merchant.id}/stage"),
        web.get(f"/m/{merchant.id}/stage/stripe"),
        web.get(f"/m/{merchant.id}/stage/payments/pi_missing"),  # 404 page
        web.post(f"/m/{merchant.id}/stage/stripe", data={}),  # 403 page
    ]
    assert [r.status_code for r in responses] == [303, 200, 200, 404, 403]
    for r in responses:
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
        assert "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["strict-transport-security"].startswith("max-age=")
    page = responses[1].text
    assert "<script>" not in page and " style=" not in page and "onclick" not in page
    assert web.get("/static/app.js").headers["x-content-type-options"] == "nosniff"
    # The API keeps its own answers: no page headers on JSON.
    assert "content-security-policy" not in web.get("/healthz").headers


# ------------------------------------------------------------------ who sees what


def test_a_merchant_never_sees_another_merchants_pages(
    web: TestClient, runtime: Runtime, worker: Worker
) -> None:
    mine = make_merchant(runtime, "Mine")
    other = make_merchant(runtime, "Other")
    add_data_set(runtime, other.id, "stage")
    pi = sf.obj("payment_intent", status="succeeded")
    evt = sf.event("payment_intent.succeeded", pi)
    post_ok(web, other.id, evt)
    worker.drain()
    sign_in(web, mine.token)
    csrf = csrf_of(web, f"/m/{mine.id}/stage")
    base = f"/m/{other.id}/stage"
    for path in (
        base,
        f"{base}/stripe",
        f"{base}/payments",
        f"{base}/payments/{pi['id']}",
        f"{base}/disputes",
        f"{base}/customers",
        f"{base}/events",
        f"{base}/events/{evt['id']}",
        "/m/mer_doesnotexist/stage",
        f"/m/{mine.id}/test",  # no such environment
        f"/m/{mine.id}/stage/no/such/page",
    ):
        r = web.get(path, follow_redirects=False)
        assert r.status_code == 404, path
        assert "Page not found" in r.text
        assert "Other" not in r.text and pi["id"] not in r.text
    r = web.post(f"{base}/events/{evt['id']}/replay", data={"csrf_token": csrf})
    assert r.status_code == 404
    assert _state(runtime, other.id, evt["id"]) == "applied"
    r = web.post(f"{base}/stripe", data={**VALID_STAGE, "csrf_token": csrf})
    assert r.status_code == 404
    assert _stored(runtime, other.id).account_id == "acct_1PgafTB7WZ01zgkW"


def test_admin_picks_a_merchant_and_sees_its_pages(web: TestClient, runtime: Runtime) -> None:
    a = make_merchant(runtime, "Alpha Shop")
    b = make_merchant(runtime, "Beta Shop")
    r = sign_in(web, ADMIN_TOKEN)
    assert r.headers["location"] == "/merchants"
    listing = web.get("/merchants")
    assert "Alpha Shop" in listing.text and "Beta Shop" in listing.text
    for m in (a, b):
        page = web.get(f"/m/{m.id}/live")
        assert page.status_code == 200
        assert m.id in page.text
    assert web.get("/m/mer_doesnotexist/stage").status_code == 404
    # A merchant asking for the list is sent to its own pages.
    web.cookies.clear()
    sign_in(web, a.token)
    r = web.get("/merchants", follow_redirects=False)
    assert r.headers["location"] == f"/m/{a.id}/stage"


# ------------------------------------------------------------------ the Stripe page


def test_invalid_data_set_shows_errors_beside_fields_and_stores_nothing(
    web: TestClient, runtime: Runtime, merchant: MerchantCtx
) -> None:
    sign_in(web, merchant.token)
    path = f"/m/{merchant.id}/stage/stripe"
    csrf = csrf_of(web, path)
    bad_secret = "sk_live_" + "x" * 24
    r = web.post(
        path,
        data={
            "csrf_token": csrf,
            "account_id": "acct_1WebShop",
            "publishable_key": "pk_live_TYooMQauvdEDq54NiTphI7jx",
            "secret_key": bad_secret,
            "webhook_signing_secret": "",
        },
    )
    assert r.status_code == 422
    html = r.text
    assert "Nothing was saved" in html
    # Each message sits in its field's block, tied to the input by aria-describedby.
    pk_block = html.split('id="f-publishable-key-field"')[1].split('id="f-secret-key-field"')[0]
    assert 'id="f-publishable-key-error"' in pk_block and "live key" in pk_block
    assert 'aria-invalid="true"' in pk_block
    sk_block = html.split('id="f-secret-key-field"')[1].split('id="f-webhook-signing')[0]
    assert 'id="f-secret-key-error"' in sk_block
    assert 'id="f-account-id-error"' not in html
    assert 'value="acct_1WebShop"' in html  # the merchant does not retype what was right
    assert bad_secret not in html  # a secret is never put back into the page
    assert _stored(runtime, merchant.id) is None


def test_valid_data_set_is_saved_and_secrets_show_masked_with_replace(
    web: TestClient, runtime: Runtime, merchant: MerchantCtx
) -> None:
    sign_in(web, merchant.token)
    path = f"/m/{merchant.id}/stage/stripe"
    csrf = csrf_of(web, path)
    form = {**VALID_STAGE, "csrf_token": csrf, "account_id": "  acct_1WebShop \n"}
    r = web.post(path, data=form, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"{path}?done=saved"
    page = web.get(r.headers["location"]).text
    assert "The data set is saved." in page
    assert "sk_test_…7777" in page and VALID_STAGE["secret_key"] not in page
    assert "<summary>Replace</summary>" in page
    stored = _stored(runtime, merchant.id)
    assert stored.account_id == "acct_1WebShop" and stored.secret_key_hint == "sk_test_…7777"
    # An empty secret field keeps the stored secret; a new account id is saved.
    r = web.post(
        path,
        data={**form, "account_id": "acct_1Other", "secret_key": ""},
        follow_redirects=False,
    )
    assert r.status_code == 303
    stored = _stored(runtime, merchant.id)
    assert stored.account_id == "acct_1Other" and stored.secret_key_hint == "sk_test_…7777"
    # The webhook URL and the 15 events are on the page.
    page = web.get(path).text
    assert f"https://merchant-backend.example/webhooks/stripe/{merchant.id}/stage" in page
    assert page.count('type="checkbox" id="ev-') == 15
    assert "charge.dispute.funds_reinstated" in page


def test_no_token_or_secret_appears_in_any_page(
    web: TestClient, runtime: Runtime, connected: MerchantCtx, worker: Worker
) -> None:
    pi = sf.obj("payment_intent", status="succeeded")
    post_ok(web, connected.id, sf.event("payment_intent.succeeded", pi))
    worker.drain()
    secrets = (connected.token, ADMIN_TOKEN, SECRET_KEY, SIGNING_SECRET, LIVE_SECRET_KEY)
    secrets += (LIVE_SIGNING_SECRET,)
    for token in (connected.token, ADMIN_TOKEN):
        web.cookies.clear()
        r = sign_in(web, token)
        assert token not in r.headers["location"]
        for env in ("stage", "live"):
            base = f"/m/{connected.id}/{env}"
            for path in (
                "/merchants",
                base,
                f"{base}/stripe",
                f"{base}/payments",
                f"{base}/events",
                f"{base}/payments/{pi['id']}",
            ):
                r = web.get(path)
                for secret in secrets:
                    assert secret not in r.text, (path, secret[:8])
                    assert secret not in str(r.url)


# ------------------------------------------------------------------ data pages


def test_overview_shows_counts_rejections_last_event_and_svg_chart(
    web: TestClient, app: Any, connected: MerchantCtx, worker: Worker
) -> None:
    now = int(time.time())
    pi = sf.payment_intent(status="succeeded", amount=2500, amount_received=2500, created=now)
    post_ok(web, connected.id, sf.event("payment_intent.succeeded", pi, created=now))
    # Another payment: with the example's own id it would be the same one, and its "created"
    # event a second later (the clock ticking between the two) would replace the succeeded one.
    other = sf.payment_intent(created=now)
    post_ok(web, connected.id, sf.event("payment_intent.created", other, created=now))
    # A delivery signed with the wrong secret is refused and counted.
    bad = web.post(
        f"/webhooks/stripe/{connected.id}/stage",
        content=b"{}",
        headers={"Stripe-Signature": "t=1,v1=00"},
    )
    assert bad.status_code == 400
    web.portal.call(app.state.inbox_writer.flush_rejections)  # type: ignore[union-attr]
    worker.drain()
    sign_in(web, connected.token)
    html = web.get(f"/m/{connected.id}/stage").text
    assert "<svg" in html and 'class="chart-bar"' in html
    assert "Events per day" in html and "Succeeded payments per day (USD)" in html
    assert "US$25.00" in html
    assert "payment_intent" in html  # the last event's type
    rejected = html.split("Rejected deliveries (24 h)</h2>")[1]
    assert '<p class="big warn-text">1</p>' in rejected
    live = web.get(f"/m/{connected.id}/live").text
    assert '<p class="big">0</p>' in live and "None received yet." in live


def test_payments_list_filters_and_pages(
    web: TestClient, connected: MerchantCtx, worker: Worker
) -> None:
    base_created = int(time.time()) - 1000
    ids = []
    for i in range(27):
        status = "succeeded" if i % 3 else "canceled"
        pi = sf.obj("payment_intent", id=f"pi_web{i:04d}", status=status, created=base_created + i)
        post_ok(web, connected.id, sf.event(f"payment_intent.{status}", pi))
        ids.append(pi["id"])
    worker.drain()
    sign_in(web, connected.token)
    page1 = web.get(f"/m/{connected.id}/stage/payments").text
    assert page1.count('href="/m/' + connected.id + "/stage/payments/pi_web") == 25
    assert "pi_web0026" in page1 and "pi_web0001" not in page1
    older = page1.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0]
    page2 = web.get(older.replace("&amp;", "&")).text
    assert "pi_web0001" in page2 and "pi_web0000" in page2 and "pi_web0026" not in page2
    canceled = web.get(f"/m/{connected.id}/stage/payments?status=canceled").text
    assert canceled.count("/stage/payments/pi_web") == 9
    assert "pi_web0001" not in canceled and "pi_web0003" in canceled


def test_dispute_shows_funds_and_highlights_a_close_due_date(
    web: TestClient, connected: MerchantCtx, worker: Worker
) -> None:
    now = int(time.time())
    soon = sf.obj(
        "dispute",
        id="dp_websoon",
        status="needs_response",
        evidence_details={**sf.fixture("dispute")["evidence_details"], "due_by": now + 2 * 86400},
    )
    later = sf.obj(
        "dispute",
        id="dp_weblater",
        status="needs_response",
        evidence_details={**sf.fixture("dispute")["evidence_details"], "due_by": now + 9 * 86400},
    )
    withdrawn = sf.fixture("balance_transaction")
    withdrawn = {**withdrawn, "amount": -1000, "fee": 1500, "net": -2500}
    soon["balance_transactions"] = [withdrawn]
    post_ok(web, connected.id, sf.event("charge.dispute.created", later))
    post_ok(web, connected.id, sf.event("charge.dispute.funds_withdrawn", soon))
    worker.drain()
    sign_in(web, connected.token)
    html = web.get(f"/m/{connected.id}/stage/disputes").text
    soon_row = html.split("dp_websoon")[0].rsplit("<tr", 1)[1]
    later_row = html.split("dp_weblater")[0].rsplit("<tr", 1)[1]
    assert "urgent-soon" in soon_row and "urgent" not in later_row
    detail = web.get(f"/m/{connected.id}/stage/disputes/dp_websoon").text
    assert re.search(r"Evidence is due in (1 day|2 days|4[6-8] hours):", detail)
    withdrawn_dd = detail.split("<dt>Withdrawn</dt>")[1].split("</dd>")[0]
    assert "US$10.00" in withdrawn_dd
    assert "general" in detail  # the reason


def test_replay_from_the_events_page_puts_a_dead_event_back_in_line(
    web: TestClient, runtime: Runtime, connected: MerchantCtx, worker: Worker
) -> None:
    pi = sf.obj("payment_intent", status="succeeded")
    evt = sf.event("payment_intent.succeeded", pi)
    post_ok(web, connected.id, evt)
    worker.drain()
    make_dead(runtime.engine, evt["id"])
    sign_in(web, connected.token)
    # The payment's timeline shows the dead event as not applied.
    waiting = web.get(f"/m/{connected.id}/stage/payments/{pi['id']}").text
    waiting = waiting.split("Not applied (yet)")[1]
    assert evt["id"] in waiting and "state-dead" in waiting
    page = web.get(f"/m/{connected.id}/stage/events?state=dead")
    assert "database is locked" in page.text
    r = web.post(
        f"/m/{connected.id}/stage/events/{evt['id']}/replay",
        data={"csrf_token": hidden(page.text, "csrf_token"), "back": str(page.url.path)},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"] == f"/m/{connected.id}/stage/events?replayed={evt['id']}"
    assert _state(runtime, connected.id, evt["id"]) == "pending"
    # ``back`` cannot send the browser elsewhere.
    r = web.post(
        f"/m/{connected.id}/stage/events/{evt['id']}/replay",
        data={"csrf_token": hidden(page.text, "csrf_token"), "back": "https://evil.example/"},
        follow_redirects=False,
    )
    assert r.headers["location"].startswith(f"/m/{connected.id}/stage/events?")
    worker.drain()
    assert _state(runtime, connected.id, evt["id"]) == "applied"
    timeline = web.get(f"/m/{connected.id}/stage/payments/{pi['id']}").text
    assert evt["id"] in timeline.split("Timeline")[1]


def test_a_changed_data_set_drops_its_old_verify_report(
    web: TestClient, runtime: Runtime, connected: MerchantCtx
) -> None:
    report = {
        "status": "ok",
        "summary": "all 5 checks passed",
        "checks": [{"name": "secret_key_accepted", "status": "ok", "message": "accepted"}],
    }
    with db.write(runtime.engine) as conn:
        datasets.record_verify_report(conn, connected.id, "stage", report)
    sign_in(web, connected.token)
    path = f"/m/{connected.id}/stage/stripe"
    page = web.get(path).text
    assert "all 5 checks passed" in page and "secret key accepted" in page
    assert "verify again" not in page
    form = {**VALID_STAGE, "csrf_token": hidden(page, "csrf_token"), "secret_key": ""}
    assert web.post(path, data=form, follow_redirects=False).status_code == 303
    # The report was about other keys: it must not make the new ones look healthy.
    page = web.get(path).text
    assert "all 5 checks passed" not in page
    assert "not verified against Stripe yet" in web.get(f"/m/{connected.id}/stage").text
    with db.read(runtime.engine) as conn:
        stored = datasets.get(conn, connected.id, "stage")
    assert stored is not None and stored.verify_report is None


@pytest.mark.parametrize(
    ("action", "headline"),
    [("verify", "Verifying did not finish"), ("webhook", "The webhook could not be set up")],
)
def test_stripe_unreachable_shows_what_went_wrong_and_keeps_the_data_set(
    runtime: Runtime, connected: MerchantCtx, action: str, headline: str
) -> None:
    from merchant_backend.asgi import create_app
    from tests.foundation_helpers import free_port

    unreachable = runtime.settings.model_copy(
        update={
            # Nothing listens there: the connection is refused at once.
            "stripe_api_base": f"http://127.0.0.1:{free_port()}",
            "stripe_max_network_retries": 0,
            "stripe_timeout": 2.0,
        }
    )
    app = create_app(Runtime(unreachable, engine=runtime.engine), run_worker=False)
    before = _stored(runtime, connected.id)
    with TestClient(app, base_url="https://testserver") as web:
        sign_in(web, connected.token)
        path = f"/m/{connected.id}/stage/stripe"
        posted = web.post(
            f"{path}/{action}", data={"csrf_token": csrf_of(web, path)}, follow_redirects=False
        )
        # POST/redirect/GET: the page that shows the result, which a reload cannot repeat.
        assert posted.status_code == 303
        assert posted.headers["location"].startswith(path + "#")
        r = web.get(path)
        assert r.status_code == 200
        assert headline in r.text
        assert "Stripe" in r.text.split(headline, 1)[1][:400]
        assert SECRET_KEY not in r.text and SIGNING_SECRET not in r.text
        again = web.get(path)  # the message is shown once; the stored report stays
        assert headline not in again.text and "nothing answered at" in again.text
    after = _stored(runtime, connected.id)
    # No endpoint, key or secret changed by a failed call; the report of the attempt is stored.
    assert replace(after, verify_report=None, verified_at=None) == replace(
        before, verify_report=None, verified_at=None
    )
    assert after.verify_report is not None and after.verify_report["status"] == "failed"


def test_live_webhook_for_a_loopback_url_is_refused_as_a_setting_to_fix(
    runtime: Runtime, connected: MerchantCtx
) -> None:
    """Not a Stripe failure but ours to fix: the page says why, with nothing sent."""
    from merchant_backend.asgi import create_app

    loopback = runtime.settings.model_copy(update={"public_url": "http://127.0.0.1:8000"})
    app = create_app(Runtime(loopback, engine=runtime.engine), run_worker=False)
    before = _stored(runtime, connected.id, "live")
    with TestClient(app) as web:
        sign_in(web, connected.token)
        path = f"/m/{connected.id}/live/stripe"
        r = web.post(f"{path}/webhook", data={"csrf_token": csrf_of(web, path)})
    assert r.status_code == 200 and r.url.path == path  # after the redirect
    assert "The webhook could not be set up" in r.text
    assert "live webhooks need an HTTPS URL" in r.text
    assert _stored(runtime, connected.id, "live") == before
