"""Honest reports: a verify or a webhook provisioning that fails on a Stripe error stores a
report naming the check it stopped at, with what answered (HTTP status, Stripe's code, request
id, the API base called) and advice that fits the status: 404 → the address or a Stripe lacking
the endpoint, 401 → the key, 429/5xx → later. The health shows it; the API's error carries it;
the CLI prints it. Against the fake Stripe, which answers each of these."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from merchant_backend.errors import UpstreamFailure
from merchant_backend.runtime import Runtime
from merchant_backend.settings import Settings
from merchant_backend.stripe.errors import advice
from merchant_backend.stripe.failure_report import failure_report
from tests.conftest import SECRET_KEY, MerchantCtx
from tests.fake_stripe import FakeStripe, rate_limited, stripe_error
from tests.foundation_helpers import cli_env, run_cli
from tests.stripe_helpers import ALL_EVENTS, aimed_at, our_url

NOT_STRIPE_404 = (404, {"detail": "Not Found"})  # what a wrong base (e.g. our own service) says
STRIPE_404 = stripe_error(
    404, "invalid_request_error", "Unrecognized request URL (GET: /v1/webhook_endpoints)."
)
STRIPE_500 = stripe_error(500, "api_error", "Something went wrong on Stripe's end.")
STRIPE_503 = (503, {"error": {"type": "api_error", "message": "Service unavailable"}})

LATER = "try again later"
WRONG_BASE = "MERCHANT_BACKEND_STRIPE_API_BASE may be wrong"


@pytest.fixture
def settings(settings: Settings, fake: FakeStripe) -> Settings:
    return aimed_at(settings, fake.url)


def verify_url(m: MerchantCtx) -> str:
    return f"/api/v1/merchants/{m.id}/stripe/stage/verify"


def health(client: TestClient, m: MerchantCtx) -> dict[str, Any]:
    shown = client.get(f"/api/v1/merchants/{m.id}/stripe/stage", headers=m.auth)
    assert shown.status_code == 200
    found: dict[str, Any] = shown.json()["health"]
    return found


# ---- the rule, without a Stripe -------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "says", "never"),
    [
        (404, WRONG_BASE, LATER),
        (401, "secret key was rejected", LATER),
        (429, LATER, WRONG_BASE),
        (500, LATER, WRONG_BASE),
        (503, LATER, WRONG_BASE),
        (None, "nothing answered at https://api.example", LATER),
    ],
)
def test_advice_fits_the_status(status: int | None, says: str, never: str) -> None:
    text = advice(status, "stripe_unreachable", "https://api.example")
    assert says in text and never not in text


def test_a_report_names_the_check_and_what_answered() -> None:
    problem = UpstreamFailure(
        "endpoint_missing",
        "stripe_endpoint_missing",
        "…",
        stripe_code=None,
        request_id="req_123",
        stripe_status=404,
        api_base="http://127.0.0.1:12111",
        operation="webhook_endpoints.list",
    )
    report = failure_report("verify", problem, "stage", 1_790_000_000.5)
    assert report["status"] == "failed" and report["action"] == "verify"
    assert [c["name"] for c in report["checks"]] == ["webhook_endpoint"]
    assert report["stripe_error"] == {
        "status": 404,
        "code": "stripe_endpoint_missing",
        "request_id": "req_123",
        "api_base": "http://127.0.0.1:12111",
        "operation": "webhook_endpoints.list",
    }
    assert report["summary"].startswith(
        "verify stopped at webhook_endpoint: http://127.0.0.1:12111 answered HTTP 404, "
        "request req_123: there is no such endpoint at http://127.0.0.1:12111"
    )
    assert report["checked_at"] == 1_790_000_000


# ---- verify and provision against the fake -------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "stripe_status", "api_status", "says", "never"),
    [
        (NOT_STRIPE_404, 404, 502, WRONG_BASE, LATER),
        (STRIPE_404, 404, 502, WRONG_BASE, LATER),
        ((429, rate_limited()), 429, 503, LATER, WRONG_BASE),
        (STRIPE_500, 500, 502, LATER, WRONG_BASE),
        (STRIPE_503, 503, 502, LATER, WRONG_BASE),
    ],
)
@pytest.mark.parametrize("action", ["verify", "webhook-endpoint"])
def test_a_failed_attempt_is_stored_and_shown(
    fake: FakeStripe,
    runtime: Runtime,
    stage: MerchantCtx,
    client: TestClient,
    action: str,
    answer: tuple[int, dict[str, Any]],
    stripe_status: int,
    api_status: int,
    says: str,
    never: str,
) -> None:
    fake.fail_next(*answer, times=3)  # whichever call comes first meets it
    r = client.post(f"/api/v1/merchants/{stage.id}/stripe/stage/{action}", headers=stage.auth)
    assert r.status_code == api_status, r.text
    error = r.json()["error"]
    report = error["report"]
    assert report["status"] == "failed"
    assert report["action"] == ("verify" if action == "verify" else "provision-webhook")
    facts = report["stripe_error"]
    assert facts["status"] == stripe_status == error["stripe_status"]
    assert facts["api_base"] == fake.url == error["api_base"]
    assert facts["operation"] in ("account.retrieve", "webhook_endpoints.list")
    if answer[1].get("error"):  # Stripe's own error shape carries a request id
        assert facts["request_id"] and facts["request_id"].startswith("req_")
        assert facts["request_id"] in report["summary"]
    assert f"HTTP {stripe_status}" in report["summary"]
    assert says in report["summary"] and never not in report["summary"]
    # The error's message says it its own way ("try again in a few seconds" for a rate limit).
    assert (says if says != LATER else "try again") in error["message"]
    assert never not in error["message"]
    assert SECRET_KEY not in r.text
    # The health shows the attempt instead of "not verified against Stripe yet".
    shown = health(client, stage)
    assert shown["status"] == "failed"
    assert shown["message"] == report["summary"]
    assert shown["report"] == report


def test_a_rejected_key_names_the_key_and_what_answered(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx, client: TestClient
) -> None:
    fake.keys.clear()
    r = client.post(verify_url(stage), headers=stage.auth)
    assert r.status_code == 200  # Stripe's verdict on the key is a finished verify
    check = {c["name"]: c for c in r.json()["checks"]}["secret_key_accepted"]
    assert check["status"] == "failed"
    assert "Stripe rejected the secret key" in check["message"]
    assert check["stripe_error"]["status"] == 401
    assert check["stripe_error"]["api_base"] == fake.url
    assert check["stripe_error"]["request_id"].startswith("req_")
    assert LATER not in check["message"]

    r = client.post(
        f"/api/v1/merchants/{stage.id}/stripe/stage/webhook-endpoint", headers=stage.auth
    )
    assert r.status_code == 502
    report = r.json()["error"]["report"]
    assert report["stripe_error"]["status"] == 401
    assert "Stripe rejected the secret key" in report["summary"] and LATER not in report["summary"]
    assert SECRET_KEY not in r.text
    assert health(client, stage)["report"] == report


def test_nothing_answering_is_stored_too(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx, client: TestClient
) -> None:
    fake.stop()
    r = client.post(verify_url(stage), headers=stage.auth)
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "stripe_unreachable"
    report = health(client, stage)["report"]
    assert report["stripe_error"]["status"] is None
    assert report["stripe_error"]["api_base"] == fake.url
    assert f"nothing answered at {fake.url}" in report["summary"]


def test_a_later_success_replaces_the_failure(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx, client: TestClient
) -> None:
    fake.fail_next(*STRIPE_503)
    assert client.post(verify_url(stage), headers=stage.auth).status_code == 502
    fake.add_endpoint(our_url(runtime.settings, stage.id), ALL_EVENTS)
    r = client.post(verify_url(stage), headers=stage.auth)
    assert r.status_code == 200
    assert health(client, stage)["report"]["checks"][0]["name"] == "secret_key_accepted"
    assert "stripe_error" not in health(client, stage)["report"]


def test_the_cli_prints_the_report_and_the_error(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx, settings: Settings
) -> None:
    env = cli_env(settings, MERCHANT_BACKEND_STRIPE_API_BASE=fake.url)
    fake.fail_next(*NOT_STRIPE_404)
    done = run_cli(["stripe", "verify", "--merchant", stage.id, "--env", "stage"], env)
    assert done.exit_code == 1
    report = json.loads(done.stdout)
    assert (
        report["stripe_error"]["status"] == 404 and report["stripe_error"]["api_base"] == fake.url
    )
    error = json.loads(done.stderr.splitlines()[-1])["error"]  # after the log line
    assert WRONG_BASE in error["message"] and LATER not in error["message"]

    fake.fail_next(*STRIPE_500, times=3)  # the CLI's settings let the SDK retry twice
    args = ["stripe", "provision-webhook", "--merchant", stage.id, "--env", "stage"]
    done = run_cli(args, env)
    assert done.exit_code == 1
    assert json.loads(done.stdout)["action"] == "provision-webhook"
    assert LATER in json.loads(done.stderr.splitlines()[-1])["error"]["message"]


def test_the_last_complete_verify_is_kept_beside_the_failure(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx, client: TestClient
) -> None:
    fake.add_endpoint(our_url(runtime.settings, stage.id), ALL_EVENTS)
    good = client.post(verify_url(stage), headers=stage.auth).json()
    for answer in (STRIPE_503, NOT_STRIPE_404):  # two failures in a row keep the same one
        fake.fail_next(*answer)
        assert client.post(verify_url(stage), headers=stage.auth).status_code == 502
        previous = health(client, stage)["report"]["previous"]
        assert previous == {
            "status": good["status"],
            "summary": good["summary"],
            "checked_at": good["checked_at"],
        }


# ---- the report on a page, in the reader's language (web/verify_messages.py) ----------------


def _problem(status: int | None, code: str = "stripe_error", **kw: Any) -> UpstreamFailure:
    return UpstreamFailure(
        "unreachable" if status is None else "error",
        code,
        kw.pop("message", "…"),
        stripe_status=status,
        api_base="https://api.example",
        operation="account.retrieve",
        **kw,
    )


@pytest.mark.parametrize(
    "problem",
    [
        _problem(None, "stripe_unreachable"),
        _problem(None, "stripe_timeout"),
        _problem(404, request_id="req_1"),
        _problem(500, stripe_code="api_error", request_id="req_2"),
        _problem(429),
    ],
)
def test_the_english_page_says_what_the_api_says_and_the_german_page_says_it_in_german(
    problem: UpstreamFailure,
) -> None:
    from merchant_backend import i18n
    from merchant_backend.web import verify_messages

    report = failure_report("verify", problem, "stage", 1_790_000_000)
    check = report["checks"][0]
    with i18n.use(i18n.Reader("en")):
        assert verify_messages.check_message(check) == check["message"]
        assert verify_messages.check_detail(check) == ""
        assert verify_messages.report_summary(report) == report["summary"].replace(
            "secret_key_accepted", "secret key accepted"
        )
    with i18n.use(i18n.Reader("de")):
        german = verify_messages.check_message(check)
        summary = verify_messages.report_summary(report)
    assert german != check["message"] and "https://api.example" in german
    assert summary.startswith("Die Prüfung brach ab bei") and german in summary
    for fact in ("req_1", "req_2", "api_error"):
        assert (fact in german) == (fact in check["message"])


def test_a_refused_key_reads_as_advice_with_stripes_own_words_beside_it() -> None:
    from merchant_backend import i18n
    from merchant_backend.web import verify_messages

    said = "Stripe rejected the secret key for acct_1 (sk_test_…4242)"
    problem = _problem(401, "stripe_key_rejected", message=said, request_id="req_9")
    report = failure_report("provision-webhook", problem, "stage", 1_790_000_000)
    check = report["checks"][0]
    assert check["message"].endswith(f"request req_9: {said}")  # the API: Stripe's case
    with i18n.use(i18n.Reader("de")):
        german = verify_messages.check_message(check)
        summary = verify_messages.report_summary(report)
    assert german == (
        "https://api.example antwortete mit HTTP 401, Anfrage req_9: der geheime Schlüssel wurde "
        "abgelehnt: Kopieren Sie ihn noch einmal unter Entwickler → API-Schlüssel und speichern "
        "Sie ihn im Datensatz"
    )
    assert summary.startswith("Das Anlegen des Webhooks brach ab bei")
    assert verify_messages.check_detail(check) == said  # shown beside it, lang="en"


@pytest.mark.parametrize(("retries", "said"), [(0, "(tried once)"), (2, "(tried 3 times)")])
def test_an_unreachable_stripe_says_how_often_it_was_tried(retries: int, said: str) -> None:
    import stripe

    from merchant_backend.stripe.errors import ErrorContext, problem_from

    ctx = ErrorContext("acct_1", "stage", "sk_test_…4242", "http://127.0.0.1:9", 5.0, retries)
    problem = problem_from(stripe.APIConnectionError("refused"), ctx, "read the account")
    assert problem.kind == "unreachable" and said in problem.message
