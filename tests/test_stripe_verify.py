"""Verify: each named check passing and failing, against a fake of Stripe's documented API."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from merchant_backend import i18n
from merchant_backend.api.errors import upstream_status
from merchant_backend.errors import UpstreamFailure
from merchant_backend.runtime import Runtime
from merchant_backend.settings import Settings
from merchant_backend.store import datasets, db
from merchant_backend.stripe.verify import CHECK_NAMES, check_endpoint, check_key_modes
from merchant_backend.web import verify_messages
from tests.conftest import SECRET_KEY, MerchantCtx, add_data_set, make_merchant
from tests.fake_stripe import FakeStripe
from tests.foundation_helpers import cli_env, run_cli
from tests.stripe_helpers import ACCOUNT, ALL_EVENTS, aimed_at, our_url, verify_connection


@pytest.fixture
def settings(settings: Settings, fake: FakeStripe) -> Settings:
    return aimed_at(settings, fake.url)


# The page writes these its own way: a time in the reader's zone; a key Stripe rejected
# without the API message's mode hint.
PAGE_WORDING = {"secret_ok", "key_rejected"}


def checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The report's checks by name; on the way, each check's reason is shown to hold: the
    English page says word for word what the API says (web/verify_messages.py)."""
    for c in report["checks"]:
        assert c.get("reason") in verify_messages.CHECKS, c
        if c["reason"] not in PAGE_WORDING:
            assert verify_messages.check_message(c) == c["message"], c
    if report["status"] == "ok":
        assert verify_messages.report_summary(report) == report["summary"]
    return {c["name"]: c for c in report["checks"]}


def healthy(fake: FakeStripe, runtime: Runtime, merchant: MerchantCtx) -> None:
    """A Stripe account where everything is right; tests break one thing each."""
    fake.add_key(SECRET_KEY, ACCOUNT)
    fake.add_endpoint(our_url(runtime.settings, merchant.id), ALL_EVENTS)
    with db.write(runtime.engine) as conn:
        datasets.record_delivery(conn, merchant.id, "stage", 1_790_000_000.0)


@pytest.fixture
def stage(runtime: Runtime, merchant: MerchantCtx) -> MerchantCtx:
    add_data_set(runtime, merchant.id, "stage")
    return merchant


def test_all_checks_pass_and_the_report_becomes_the_health(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx, client: TestClient
) -> None:
    healthy(fake, runtime, stage)
    r = client.post(f"/api/v1/merchants/{stage.id}/stripe/stage/verify", headers=stage.auth)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["status"] == "ok"
    assert [c["name"] for c in report["checks"]] == list(CHECK_NAMES)
    assert {c["status"] for c in report["checks"]} == {"ok"}
    assert "2026-09-21 14:13:20 UTC" in checks(report)["signing_secret_verified"]["message"]
    assert fake.paths() == ["/v1/account", "/v1/webhook_endpoints"]
    assert {r.headers["stripe-version"] for r in fake.requests} == {"2026-07-29.dahlia"}
    shown = client.get(f"/api/v1/merchants/{stage.id}/stripe/stage", headers=stage.auth).json()
    assert shown["health"]["status"] == "ok"
    assert shown["health"]["report"]["checks"] == report["checks"]
    assert shown["health"]["verified_at"] is not None


def test_rejected_key_fails_with_what_to_do_and_never_the_key(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx
) -> None:
    healthy(fake, runtime, stage)
    fake.keys.clear()  # Stripe no longer knows the key (rolled or deleted)
    report = verify_connection(runtime, stage.id, "stage")
    c = checks(report)
    assert report["status"] == "failed"
    assert c["secret_key_accepted"]["status"] == "failed"
    assert c["secret_key_accepted"]["message"].startswith(
        "Stripe rejected the secret key for acct_1PgafTB7WZ01zgkW (sk_test_…4242): "
        "copy it again from Developers → API keys"
    )
    assert c["account_matches"]["status"] == "failed"
    assert c["webhook_endpoint"]["status"] == "failed"
    assert SECRET_KEY not in str(report)
    assert report["summary"].startswith("3 of 5 checks failed")
    # Without a key nothing else was asked.
    assert fake.paths() == ["/v1/account"]


def test_key_of_another_account_fails_naming_both(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx
) -> None:
    healthy(fake, runtime, stage)
    fake.add_key(SECRET_KEY, "acct_1Other")
    c = checks(verify_connection(runtime, stage.id, "stage"))
    assert c["secret_key_accepted"]["status"] == "ok"
    assert c["account_matches"]["status"] == "failed"
    assert (
        "belongs to acct_1Other, but the data set says acct_1PgafTB7WZ01zgkW"
        in (c["account_matches"]["message"])
    )


def test_restricted_key_that_may_not_read_the_account_is_a_warning_naming_the_permission(
    fake: FakeStripe, runtime: Runtime, merchant: MerchantCtx
) -> None:
    rk = "rk_test_" + "R" * 20 + "8888"
    add_data_set(runtime, merchant.id, "stage", secret_key=rk)
    healthy(fake, runtime, merchant)
    fake.add_key(rk, ACCOUNT, {"GET /v1/account": "rak_accounts_kyc_basic_read"})
    report = verify_connection(runtime, merchant.id, "stage")
    c = checks(report)
    assert c["secret_key_accepted"]["status"] == "ok"
    assert c["account_matches"]["status"] == "warning"
    assert "'rak_accounts_kyc_basic_read'" in c["account_matches"]["message"]
    assert c["account_matches"]["permission"] == "rak_accounts_kyc_basic_read"
    assert report["status"] == "warning"
    assert rk not in str(report)


def test_restricted_key_that_may_not_list_webhooks_is_a_warning(
    fake: FakeStripe, runtime: Runtime, merchant: MerchantCtx
) -> None:
    rk = "rk_test_" + "W" * 20 + "7777"
    add_data_set(runtime, merchant.id, "stage", secret_key=rk)
    healthy(fake, runtime, merchant)
    fake.add_key(rk, ACCOUNT, {"GET /v1/webhook_endpoints": "rak_webhook_read"})
    c = checks(verify_connection(runtime, merchant.id, "stage"))
    assert c["account_matches"]["status"] == "ok"
    assert c["webhook_endpoint"]["status"] == "warning"
    assert "'rak_webhook_read'" in c["webhook_endpoint"]["message"]


def test_endpoint_missing_fails_and_points_at_a_wrong_public_url(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx
) -> None:
    fake.add_key(SECRET_KEY, ACCOUNT)
    c = checks(verify_connection(runtime, stage.id, "stage"))
    assert c["webhook_endpoint"]["status"] == "failed"
    assert "run provision-webhook" in c["webhook_endpoint"]["message"]
    fake.add_endpoint(f"https://old-host.example/webhooks/stripe/{stage.id}/stage", ALL_EVENTS)
    c = checks(verify_connection(runtime, stage.id, "stage"))
    assert c["webhook_endpoint"]["status"] == "failed"
    assert "is MERCHANT_BACKEND_PUBLIC_URL right?" in c["webhook_endpoint"]["message"]


def test_disabled_endpoint_and_missing_events_fail_listing_them(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx
) -> None:
    fake.add_key(SECRET_KEY, ACCOUNT)
    endpoint = fake.add_endpoint(
        our_url(runtime.settings, stage.id),
        [e for e in ALL_EVENTS if not e.startswith("charge.dispute.")],
        status="disabled",
    )
    c = checks(verify_connection(runtime, stage.id, "stage"))["webhook_endpoint"]
    assert c["status"] == "failed"
    assert "it is disabled" in c["message"]
    assert c["missing_events"] == [
        "charge.dispute.closed",
        "charge.dispute.created",
        "charge.dispute.funds_reinstated",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.updated",
    ]
    assert "does not send 5 of the 15 events: charge.dispute.closed" in c["message"]
    endpoint.update(status="enabled", enabled_events=["*"])
    c = checks(verify_connection(runtime, stage.id, "stage"))["webhook_endpoint"]
    assert c["status"] == "ok", c
    assert c["missing_events"] == []


def test_two_endpoints_for_our_url_is_a_warning(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx
) -> None:
    healthy(fake, runtime, stage)
    second = fake.add_endpoint(our_url(runtime.settings, stage.id), ALL_EVENTS)
    c = checks(verify_connection(runtime, stage.id, "stage"))["webhook_endpoint"]
    assert c["status"] == "warning"
    assert f"delete {second['id']}" in c["message"]


def test_endpoint_in_the_other_mode_fails_key_modes(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx
) -> None:
    healthy(fake, runtime, stage)
    fake.endpoints[0]["livemode"] = True
    c = checks(verify_connection(runtime, stage.id, "stage"))
    assert c["key_modes"]["status"] == "failed"
    assert "the webhook endpoint is a live-mode endpoint" in c["key_modes"]["message"]


def test_key_modes_rule() -> None:
    assert check_key_modes("stage", "test", "test", False).status == "ok"
    assert check_key_modes("live", "live", "live", True).status == "ok"
    bad = check_key_modes("live", "test", "live", None)
    assert bad.status == "failed"
    assert "the secret key is a test-mode key" in bad.message
    assert "live needs live mode" in bad.message
    assert check_key_modes("stage", "test", "live", None).status == "failed"


def test_signing_secret_check_each_outcome(
    fake: FakeStripe, runtime: Runtime, client: TestClient
) -> None:
    fake.add_key(SECRET_KEY, ACCOUNT)
    m = make_merchant(runtime)
    add_data_set(runtime, m.id, "stage")
    c = checks(verify_connection(runtime, m.id, "stage"))["signing_secret_verified"]
    assert c["status"] == "warning"
    assert "has not verified a delivery yet" in c["message"]
    with db.write(runtime.engine) as conn:
        datasets.record_delivery(conn, m.id, "stage", 1_790_000_000.0)
    c = checks(verify_connection(runtime, m.id, "stage"))["signing_secret_verified"]
    assert c["status"] == "ok"
    assert c["last_delivery_at"] == 1_790_000_000
    # A data set saved without a signing secret (the article creates the webhook last).
    bare = make_merchant(runtime, "Bare")
    r = client.put(
        f"/api/v1/merchants/{bare.id}/stripe/stage",
        headers=bare.auth,
        json={
            "account_id": ACCOUNT,
            "publishable_key": "pk_test_TYooMQauvdEDq54NiTphI7jx",
            "secret_key": SECRET_KEY,
        },
    )
    assert r.status_code == 200, r.text
    c = checks(verify_connection(runtime, bare.id, "stage"))["signing_secret_verified"]
    assert c["status"] == "failed"
    assert "no webhook signing secret is stored" in c["message"]


def test_stripe_unreachable_raises_and_stores_a_report_of_the_attempt(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx, client: TestClient
) -> None:
    healthy(fake, runtime, stage)
    assert verify_connection(runtime, stage.id, "stage")["status"] == "ok"
    fake.fail_next(500, {"error": {"type": "api_error", "message": "Something went wrong"}})
    with pytest.raises(UpstreamFailure) as info:
        verify_connection(runtime, stage.id, "stage")
    assert upstream_status(info.value) == 502
    r = client.post(f"/api/v1/merchants/{stage.id}/stripe/stage/verify", headers=stage.auth)
    assert r.status_code == 200  # the queued failure was used up above
    fake.stop()  # now Stripe is gone altogether
    r = client.post(f"/api/v1/merchants/{stage.id}/stripe/stage/verify", headers=stage.auth)
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "stripe_unreachable"
    # The health says the last attempt failed and why (test_stripe_failure_reports.py), not
    # that an earlier verify was fine.
    shown = client.get(f"/api/v1/merchants/{stage.id}/stripe/stage", headers=stage.auth).json()
    assert shown["health"]["status"] == "failed"
    assert "nothing answered at" in shown["health"]["message"]


def test_verify_route_is_scoped_to_the_merchant(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx, client: TestClient
) -> None:
    other = make_merchant(runtime, "Other")
    r = client.post(f"/api/v1/merchants/{stage.id}/stripe/stage/verify", headers=other.auth)
    assert r.status_code == 404
    r = client.post(f"/api/v1/merchants/{stage.id}/stripe/live/verify", headers=stage.auth)
    assert r.status_code == 404
    assert "no live data set" in r.json()["error"]["message"]
    assert fake.requests == []


def test_cli_verify_prints_the_report_and_exits_1_when_a_check_failed(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx, settings: Settings
) -> None:
    env = cli_env(settings, MERCHANT_BACKEND_STRIPE_API_BASE=fake.url)
    args = ["stripe", "verify", "--merchant", stage.id, "--env", "stage"]
    healthy(fake, runtime, stage)
    ok = run_cli(args, env)
    assert ok.exit_code == 0, ok.output
    assert '"status": "ok"' in ok.stdout
    fake.endpoints.clear()
    failed = run_cli(args, env)
    assert failed.exit_code == 1
    assert '"status": "failed"' in failed.stdout
    fake.keys.clear()
    rejected = run_cli(args, env)
    assert rejected.exit_code == 1
    assert "Stripe rejected the secret key for acct_1PgafTB7WZ01zgkW" in rejected.stdout
    assert SECRET_KEY not in rejected.stdout + rejected.stderr


def test_each_pure_check_reads_on_the_page_as_the_api_says_it_and_in_german() -> None:
    url = "https://shop.example/webhooks/stripe/mer_1/stage"
    ours = {"id": "we_1", "url": url, "status": "enabled", "enabled_events": ["*"]}
    off = {**ours, "status": "disabled", "enabled_events": ["account.updated"]}
    made = [
        check_key_modes("live", "test", "live", None),
        check_key_modes("stage", "test", "test", True),
        check_key_modes("stage", "", "", None),
        check_key_modes("stage", "test", "test", False),
        check_endpoint(url, []),
        check_endpoint(url, [{**ours, "url": "https://old.example/webhooks/stripe/mer_1/stage"}]),
        check_endpoint(url, [off]),
        check_endpoint(url, [ours, {**ours, "id": "we_2"}]),
        check_endpoint(url, [ours]),
    ]
    for c in made:
        shown = c[0] if isinstance(c, tuple) else c
        check = shown.as_json()
        assert verify_messages.check_message(check) == check["message"], check
        with i18n.use(i18n.Reader("de")):
            german = verify_messages.check_message(check)
        assert german != check["message"], german
        # Stripe's and our codes in the German sentence are the reader's words too.
        assert not re.search(r"\b(unknown|disabled|mode)\b", german), german
