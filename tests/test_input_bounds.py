"""Issue 9, item 5: the smaller fixes to bounded input.

Numbers are ASCII digits or a clear 400 (never a 500 from ``int('²')``); a revoked signing
secret stops verifying within a second in every serving process.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from merchant_backend.asgi import create_app
from merchant_backend.runtime import Runtime
from merchant_backend.store import datasets, db
from merchant_backend.store import merchants as merchant_store
from merchant_backend.stripe.client import insecure_base_problem
from merchant_backend.stripe.signature import SignatureRejected, parse_header
from merchant_backend.validation import (
    hide_secrets,
    is_merchant_id,
    loggable_id,
    looks_like_secret,
    parse_ascii_int,
)
from tests import stripe_factory as sf
from tests.conftest import LIVE_SECRET_KEY, SECRET_KEY, SIGNING_SECRET, MerchantCtx, add_data_set
from tests.fake_stripe import FakeStripe
from tests.stripe_helpers import ACCOUNT, aimed_at
from tests.test_webhook_rejections import RecordingLog
from tests.web_support import csrf_of, sign_in
from tests.webhook_support import post, store_rows, url


@pytest.mark.parametrize(
    "header",
    [
        "t=²,v1=ab",  # SUPERSCRIPT TWO: str.isdigit() says yes, int() says no
        "t=١٢٣,v1=ab",  # Arabic-Indic digits
        "t=１２,v1=ab",  # fullwidth digits
        "t=12,v1=é",  # compare_digest refuses non-ASCII text
        "t=12,v1=abc²",
    ],
)
def test_a_header_with_other_digits_is_malformed_not_a_crash(header: str) -> None:
    with pytest.raises(SignatureRejected) as caught:
        parse_header(header)
    assert caught.value.reason == "malformed_signature"


def test_a_unicode_digit_in_the_header_answers_400_over_http(
    client: TestClient, runtime: Runtime, connected: MerchantCtx
) -> None:
    before = store_rows(runtime.engine)
    raw = sf.body(sf.event("payment_intent.created", sf.payment_intent()))
    # HTTP headers are bytes; Starlette reads them as Latin-1, where 0xB2 is '²'.
    for header in (b"t=\xb2,v1=ab", b"t=12,v1=\xe9", b"t=\xb2\xb3\xb9,v1=" + b"0" * 64):
        r = client.post(url(connected.id), content=raw, headers={"Stripe-Signature": header})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "malformed_signature"
    assert store_rows(runtime.engine) == before


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(header=st.binary(max_size=200).filter(lambda b: b"\r" not in b and b"\n" not in b))
def test_any_signature_header_is_400_never_500(
    client: TestClient, connected: MerchantCtx, header: bytes
) -> None:
    raw = sf.body(sf.event("payment_intent.created", sf.payment_intent()))
    r = client.post(
        url(connected.id), content=raw, headers={"Stripe-Signature": header.strip() or b"x"}
    )
    assert r.status_code == 400, r.text


class Clock:
    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t


def test_a_revoked_signing_secret_stops_verifying_within_a_second_in_every_process(
    runtime: Runtime, connected: MerchantCtx, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    monkeypatch.setattr("merchant_backend.clock.now", clock)
    new_secret = "whsec_" + secrets.token_hex(16)

    def deliver(c: TestClient, secret: str) -> Any:
        return post(
            c, connected.id, sf.event("customer.updated", sf.obj("customer")), secret=secret
        )

    # Two serving processes, each with its own credential cache, on one database.
    with (
        TestClient(create_app(runtime, run_worker=False)) as one,
        TestClient(create_app(runtime, run_worker=False)) as two,
    ):
        for c in (one, two):
            assert deliver(c, SIGNING_SECRET).status_code == 200  # both caches hold the secret
        # A third process (the CLI's roll-secret --old-valid-for 0) revokes it; nobody tells
        # the serving processes.
        with db.write(runtime.engine) as conn:
            datasets.roll_signing_secret(
                conn, runtime.keys.get(), connected.id, "stage", new_secret, 0
            )
        clock.t += 1.0
        for c in (one, two):
            r = deliver(c, SIGNING_SECRET)
            assert r.status_code == 400 and r.json()["error"]["code"] == "bad_signature"
            assert deliver(c, new_secret).status_code == 200


def test_live_keys_are_never_sent_to_a_plain_http_api_base() -> None:
    assert insecure_base_problem("http://api.stripe.example", LIVE_SECRET_KEY) is not None
    assert insecure_base_problem("HTTP://127.0.0.1:12111", "rk_live_" + "x" * 24) is not None
    assert insecure_base_problem("https://api.stripe.com", LIVE_SECRET_KEY) is None
    # Test keys may go to a local fake.
    assert insecure_base_problem("http://127.0.0.1:12111", SECRET_KEY) is None


def test_a_live_call_against_a_plain_http_base_is_refused_before_any_request(
    fake: FakeStripe, runtime: Runtime, merchant: MerchantCtx
) -> None:
    add_data_set(runtime, merchant.id, "live")
    fake.add_key(LIVE_SECRET_KEY, ACCOUNT)
    runtime.settings = aimed_at(runtime.settings, fake.url)  # http://127.0.0.1:…
    with TestClient(create_app(runtime, run_worker=False)) as c:
        r = c.post(f"/api/v1/merchants/{merchant.id}/stripe/live/verify", headers=merchant.auth)
    assert r.status_code == 502, r.text
    assert r.json()["error"]["code"] == "stripe_api_base_insecure"
    assert "HTTPS" in r.json()["error"]["message"]
    assert fake.requests == []


# ---- the pure rules ------------------------------------------------------------------------


def test_numbers_are_ascii_digits_only() -> None:
    assert parse_ascii_int("86400") == 86400 and parse_ascii_int("0") == 0
    for text in ("²", "١٢", "１２", "12²", "", " 1", "-1", "+1", "1.0", "1e3", "9" * 19):
        assert parse_ascii_int(text) is None, text


def test_merchant_ids_have_one_shape() -> None:
    assert is_merchant_id("mer_" + "0123456789abcdef")
    for text in ("mer_x", "mer_" + "0" * 17, "MER_" + "a" * 16, "mer_" + "g" * 16, "x" * 60_000):
        assert not is_merchant_id(text)
    assert len(loggable_id("x" * 60_000)) < 80


def test_anything_shaped_like_a_secret_is_cut_to_its_kind() -> None:
    text = f"got {LIVE_SECRET_KEY} and whsec_{'a' * 32} and rk_test_{'b' * 24}; pk_test_ok stays"
    shown = hide_secrets(text)
    assert shown == "got sk_live_… and whsec_… and rk_test_…; pk_test_ok stays"
    assert not looks_like_secret(shown) and looks_like_secret(text)
    assert hide_secrets("mbt_abc and ask_live_x") == "mbt_abc and ask_live_x"


# ---- over HTTP -----------------------------------------------------------------------------


@pytest.fixture
def web(app: Any) -> Iterator[TestClient]:
    with TestClient(app, base_url="https://testserver") as c:
        yield c


def test_a_unicode_digit_in_the_roll_form_is_a_422_beside_its_field(
    web: TestClient, runtime: Runtime, connected: MerchantCtx
) -> None:
    sign_in(web, connected.token)
    page = f"/m/{connected.id}/stage/stripe"
    for seconds in ("²", "١٢٠", "１２０"):
        r = web.post(
            f"{page}/roll",
            data={
                "csrf_token": csrf_of(web, page),
                "new_signing_secret": "whsec_" + secrets.token_hex(16),
                "old_valid_for": seconds,
            },
        )
        assert r.status_code == 422, r.text
        assert 'id="f-old-valid-for-error"' in r.text


def test_a_secret_typed_into_another_field_never_comes_back(
    web: TestClient, client: TestClient, runtime: Runtime, connected: MerchantCtx
) -> None:
    typed = "sk_live_" + secrets.token_hex(16)
    sign_in(web, connected.token)
    path = f"/m/{connected.id}/stage/stripe"
    r = web.post(
        path,
        data={
            "csrf_token": csrf_of(web, path),
            "account_id": typed,
            "publishable_key": typed,
            "secret_key": "",
            "webhook_signing_secret": "",
        },
    )
    assert r.status_code == 422 and typed not in r.text
    assert 'id="f-publishable-key-error"' in r.text
    base = f"/api/v1/merchants/{connected.id}/stage"
    answers = [
        client.put(
            f"/api/v1/merchants/{connected.id}/stripe/stage",
            json={"account_id": typed, "publishable_key": typed, "secret_key": typed},
            headers=connected.auth,
        ),
        client.get(f"{base}/events", params={"starting_after": typed}, headers=connected.auth),
        client.get(f"{base}/payment-intents", params={"limit": typed}, headers=connected.auth),
    ]
    for r in answers:
        assert 400 <= r.status_code < 500, r.text
        assert typed not in r.text and typed[:12] not in r.text, r.text


def test_a_60_kb_merchant_id_is_refused_before_any_lookup_or_long_log_line(
    client: TestClient, admin_auth: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    huge = "mer_" + "x" * 60_000
    lookups: list[str] = []
    real = merchant_store.get

    def counted(conn: Any, merchant_id: str) -> Any:
        lookups.append(merchant_id)
        return real(conn, merchant_id)

    monkeypatch.setattr(merchant_store, "get", counted)
    log = RecordingLog()
    monkeypatch.setattr("merchant_backend.api.webhooks.log", log)
    r = client.post(f"/webhooks/stripe/{huge}/stage", content=b"{}")
    assert r.status_code == 404
    assert [kw["reason"] for _, _, kw in log.entries] == ["unknown_merchant"]
    assert len(repr(log.entries)) < 500
    for path in (
        f"/api/v1/merchants/{huge}/stripe/stage",
        f"/api/v1/merchants/{huge}/stage/events",
    ):
        assert client.get(path, headers=admin_auth).status_code == 404
    assert lookups == []


def test_every_answer_with_a_token_a_client_secret_or_a_data_set_is_no_store(
    fake: FakeStripe, runtime: Runtime, admin_auth: dict[str, str]
) -> None:
    fake.add_key(SECRET_KEY, ACCOUNT)
    runtime.settings = aimed_at(runtime.settings, fake.url)
    with TestClient(create_app(runtime, run_worker=False)) as c:
        created = c.post("/api/v1/merchants", json={"name": "Cached"}, headers=admin_auth)
        assert created.status_code == 201 and "api_token" in created.json()
        m = MerchantCtx(created.json()["id"], created.json()["api_token"])
        add_data_set(runtime, m.id, "stage")
        answers = [
            created,
            c.get(f"/api/v1/merchants/{m.id}/stripe/stage", headers=m.auth),
            c.post(
                f"/api/v1/merchants/{m.id}/stage/payment-intents",
                json={"amount": 1000, "currency": "usd"},
                headers={**m.auth, "Idempotency-Key": secrets.token_hex(8)},
            ),
            c.get(f"/api/v1/merchants/{m.id}/stage/events", headers=m.auth),
            c.get(f"/api/v1/merchants/{m.id}/stage/nothing-here", headers=m.auth),
        ]
        for r in answers:
            assert r.headers.get("cache-control") == "no-store", (r.request.url, r.status_code)
        assert "client_secret" in answers[2].text
        static = c.get("/static/app.css")
        if static.status_code == 200:
            assert static.headers.get("cache-control") != "no-store"


def test_a_nul_in_an_address_or_a_name_is_refused_not_a_500(
    client: TestClient, connected: MerchantCtx, admin_auth: dict[str, str]
) -> None:
    """Found by schemathesis on PostgreSQL: ``?object_id=%00`` reached the database (500)."""
    base = f"/api/v1/merchants/{connected.id}/stage"
    for path in (f"{base}/events?object_id=%00", f"{base}/events/evt_%00", f"{base}%00/events"):
        r = client.get(path, headers=connected.auth)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request", path
        assert r.headers["cache-control"] == "no-store"
    r = client.post("/api/v1/merchants", json={"name": "Shop\u0000"}, headers=admin_auth)
    assert r.status_code == 422, r.text
    r = client.post("/api/v1/merchants", json={"name": "Shop\nINFO forged"}, headers=admin_auth)
    assert r.status_code == 422, r.text
