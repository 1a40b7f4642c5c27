"""The data set rules of the contract: each wrong field gets its own message that says what is
wrong and what to do; a rejected data set changes nothing stored (API and CLI alike)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from merchant_backend.runtime import Runtime
from merchant_backend.settings import Settings
from merchant_backend.store import datasets, db
from merchant_backend.validation import (
    DataSetInput,
    Env,
    check_account_id,
    check_publishable_key,
    check_secret_key,
    check_signing_secret,
    validate_data_set,
    validate_env,
)
from tests.conftest import LIVE_SECRET_KEY, SECRET_KEY, SIGNING_SECRET, MerchantCtx
from tests.foundation_helpers import VALID_LIVE, VALID_STAGE, cli_env, rows, run_cli

BODY = "aB3dE5gH7jK9mN1pQ3sT5vW7"  # the shape of a Stripe key's random part

# (field, env, value, what the message must say). Every rule of the contract, one case each
# at least; the swapped-key and wrong-environment cases are the mistakes people really make.
CASES: list[tuple[str, Env, str, str]] = [
    ("account_id", "stage", "", "account id is missing: copy it from Stripe → gear"),
    ("account_id", "stage", "1StageAcct", "account id must be 'acct_' followed by"),
    ("account_id", "stage", "acct_", "account id is incomplete"),
    ("account_id", "stage", "acct_1Stage Acct", "contains spaces or line breaks"),
    ("account_id", "stage", "acct_1StageAcct\n", "contains spaces or line breaks"),
    ("account_id", "stage", "acct_1Stage-Acct", "letters and digits only"),
    ("account_id", "stage", "acct_" + "1" * 65, "account id is too long (70 characters"),
    ("account_id", "live", "pk_live_" + BODY, "this is a publishable key (pk_…), not the account"),
    ("account_id", "stage", "sk_test_" + BODY, "this is a secret key (sk_…), not the account id"),
    ("publishable_key", "stage", "", "publishable key is missing: copy it from"),
    (
        "publishable_key",
        "stage",
        "pk_live_" + BODY,
        "publishable key is a live key (pk_live_…) but this is the stage environment: "
        "copy the test key (pk_test_…)",
    ),
    (
        "publishable_key",
        "live",
        "pk_test_" + BODY,
        "publishable key is a test key (pk_test_…) but this is the live environment: "
        "copy the live key (pk_live_…)",
    ),
    ("publishable_key", "stage", "sk_test_" + BODY, "this is a secret key, not the publishable"),
    ("publishable_key", "stage", "whsec_" + BODY, "webhook signing secret (whsec_…), not the pub"),
    ("publishable_key", "stage", "acct_1StageAcct", "this is the account id, not the publishable"),
    ("publishable_key", "stage", "pub_" + BODY, "publishable key must start with pk_test_"),
    ("publishable_key", "stage", "pk_test_abc", "publishable key is too short: copy the whole"),
    ("publishable_key", "stage", "pk_test_" + BODY + "$", "contains characters other than"),
    ("publishable_key", "stage", "pk_test_" + BODY + "\u00a0", "contains spaces or line breaks"),
    ("publishable_key", "stage", "pk_test_" + "a" * 250, "publishable key is too long (258 char"),
    ("secret_key", "stage", "", "secret key is missing: copy it from Stripe → Developers"),
    (
        "secret_key",
        "stage",
        "sk_live_" + BODY,
        "secret key is a live key (sk_live_…) but this is the stage environment: "
        "copy the test key (sk_test_… or rk_test_…)",
    ),
    ("secret_key", "stage", "rk_live_" + BODY, "secret key is a live key (rk_live_…)"),
    (
        "secret_key",
        "live",
        "sk_test_" + BODY,
        "secret key is a test key (sk_test_…) but this is the live environment: "
        "copy the live key (sk_live_… or rk_live_…)",
    ),
    ("secret_key", "stage", "pk_test_" + BODY, "this is the publishable key, not the secret key"),
    ("secret_key", "stage", "whsec_" + BODY, "webhook signing secret (whsec_…), not the secret"),
    ("secret_key", "stage", "key_" + BODY, "secret key must start with sk_test_ (or rk_test_"),
    ("secret_key", "stage", "sk_test_1234", "secret key is too short: copy the whole secret key"),
    ("secret_key", "stage", "sk_test_" + BODY + "\u200b", "contains characters other than"),
    ("secret_key", "stage", " sk_test_" + BODY, "secret key contains spaces or line breaks"),
    ("secret_key", "live", "sk_live_" + BODY + "\t", "secret key contains spaces or line breaks"),
    ("secret_key", "live", "sk_live_" + "a" * 250, "secret key is too long (258 characters"),
    ("webhook_signing_secret", "stage", "", "webhook signing secret is missing: copy it from"),
    ("webhook_signing_secret", "stage", "sec_" + BODY, "must start with whsec_; find it under"),
    ("webhook_signing_secret", "stage", "sk_test_" + BODY, "this is a secret key (sk_…), not th"),
    ("webhook_signing_secret", "live", "pk_live_" + BODY, "this is a publishable key (pk_…), not"),
    ("webhook_signing_secret", "stage", "whsec_abc", "webhook signing secret is too short"),
    ("webhook_signing_secret", "stage", "whsec_" + BODY + "!", "contains characters other than"),
    ("webhook_signing_secret", "stage", "whsec_" + BODY + " x", "contains spaces or line break"),
]

CHECKS = {
    "account_id": lambda value, env: check_account_id(value),
    "publishable_key": check_publishable_key,
    "secret_key": check_secret_key,
    "webhook_signing_secret": lambda value, env: check_signing_secret(value),
}


def valid(env: Env) -> dict[str, str]:
    base = VALID_STAGE if env == "stage" else VALID_LIVE
    secret = SECRET_KEY if env == "stage" else LIVE_SECRET_KEY
    return {**base, "secret_key": secret, "webhook_signing_secret": SIGNING_SECRET}


def with_field(env: Env, field: str, value: str) -> dict[str, str]:
    return {**valid(env), field: value}


def case_id(case: tuple[str, Env, str, str]) -> str:
    return f"{case[0]}-{case[1]}-{case[3][:30]}"


# ---- the pure rules ----------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_each_mistake_has_its_own_message(case: tuple[str, Env, str, str]) -> None:
    field, env, value, expected = case
    message = CHECKS[field](value, env)
    assert message is not None and expected in message
    # A message names the kind of value, never the value itself (it may be a secret).
    if len(value.strip()) > 8:
        assert value.strip() not in message
    # The whole data set reports exactly that field.
    errors = validate_data_set(DataSetInput(**with_field(env, field, value)), env)
    assert [(e.field, e.message) for e in errors] == [(field, message)]


@pytest.mark.parametrize("env", ["stage", "live"])
def test_valid_data_sets_pass(env: Env) -> None:
    assert validate_data_set(DataSetInput(**valid(env)), env) == []
    mode = "test" if env == "stage" else "live"
    restricted = with_field(env, "secret_key", f"rk_{mode}_{BODY}")
    assert validate_data_set(DataSetInput(**restricted), env) == []


def test_all_problems_are_reported_at_once_one_message_per_field() -> None:
    data = DataSetInput(
        account_id="pk_test_" + BODY,
        publishable_key="sk_test_" + BODY,
        secret_key="pk_test_" + BODY,
        webhook_signing_secret="sk_test_" + BODY,
    )
    errors = validate_data_set(data, "stage")
    assert [e.field for e in errors] == [
        "account_id",
        "publishable_key",
        "secret_key",
        "webhook_signing_secret",
    ]
    assert len({e.message for e in errors}) == 4


def test_signing_secret_may_be_missing_but_secret_key_only_when_one_is_stored() -> None:
    data = DataSetInput(**{**valid("stage"), "webhook_signing_secret": None})
    assert validate_data_set(data, "stage") == []
    no_key = DataSetInput(**{**valid("stage"), "secret_key": None})
    assert [e.field for e in validate_data_set(no_key, "stage")] == ["secret_key"]
    assert validate_data_set(no_key, "stage", require_secret_key=False) == []


def test_environment_is_stage_or_live() -> None:
    assert validate_env("live") == "live"
    with pytest.raises(Exception, match="environment must be 'stage' or 'live', not 'prod'"):
        validate_env("prod")


# ---- through the API --------------------------------------------------------------------


def url(merchant: MerchantCtx, env: str = "stage") -> str:
    return f"/api/v1/merchants/{merchant.id}/stripe/{env}"


# One case per field and kind of mistake is enough here; the rules themselves are above.
API_CASES = [
    c
    for c in CASES
    if c[3].startswith(("account id must", "this is a publishable key (pk_…), not the account"))
    or "but this is the" in c[3]
    or c[3].startswith(("this is the publishable key", "this is a secret key (sk_…), not th"))
    or "too short" in c[3]
    or "spaces" in c[3]
]


@pytest.mark.parametrize("case", API_CASES, ids=case_id)
def test_api_rejects_a_field_with_its_message_and_stores_nothing(
    client: TestClient, runtime: Runtime, merchant: MerchantCtx, case: tuple[str, Env, str, str]
) -> None:
    field, env, value, _ = case
    before = rows(runtime.engine)
    r = client.put(url(merchant, env), json=with_field(env, field, value), headers=merchant.auth)
    assert r.status_code == 422, r.text
    message = CHECKS[field](value, env)
    assert r.json() == {
        "error": {
            "code": "invalid_request",
            "message": message,
            "field": field,
            "errors": [{"field": field, "message": message}],
        }
    }
    assert rows(runtime.engine) == before
    assert client.get(url(merchant, env), headers=merchant.auth).status_code == 404


def test_api_lists_every_wrong_field(client: TestClient, merchant: MerchantCtx) -> None:
    body = {
        "account_id": "acct_",
        "publishable_key": "pk_live_" + BODY,
        "secret_key": "sk_live_" + BODY,
        "webhook_signing_secret": "whsec_x",
    }
    r = client.put(url(merchant), json=body, headers=merchant.auth)
    assert r.status_code == 422
    error = r.json()["error"]
    assert [e["field"] for e in error["errors"]] == list(body)
    assert error["field"] == "account_id"
    assert "sk_live_" + BODY not in r.text


def test_rejected_update_keeps_the_stored_data_set_exactly(
    client: TestClient, runtime: Runtime, merchant: MerchantCtx
) -> None:
    r = client.put(url(merchant), json=valid("stage"), headers=merchant.auth)
    assert r.status_code == 200, r.text
    shown = client.get(url(merchant), headers=merchant.auth).json()
    before = rows(runtime.engine)
    # A new valid secret key beside a wrong publishable key: nothing of it may be stored.
    update = {
        **valid("stage"),
        "account_id": "acct_1Other",
        "secret_key": "sk_test_" + BODY + "NEW",
        "publishable_key": "pk_live_" + BODY,
    }
    r = client.put(url(merchant), json=update, headers=merchant.auth)
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "publishable_key"
    assert rows(runtime.engine) == before
    assert client.get(url(merchant), headers=merchant.auth).json() == shown
    with db.read(runtime.engine) as conn:
        kept = datasets.secrets(conn, runtime.keys.for_token, merchant.id, "stage")
    assert kept is not None and kept.secret_key == SECRET_KEY


def test_update_may_leave_secrets_out_to_keep_them(
    client: TestClient, runtime: Runtime, merchant: MerchantCtx
) -> None:
    assert client.put(url(merchant), json=valid("stage"), headers=merchant.auth).status_code == 200
    r = client.put(
        url(merchant), json={**VALID_STAGE, "account_id": "acct_1Renamed"}, headers=merchant.auth
    )
    assert r.status_code == 200, r.text
    assert r.json()["account_id"] == "acct_1Renamed"
    with db.read(runtime.engine) as conn:
        kept = datasets.secrets(conn, runtime.keys.for_token, merchant.id, "stage")
    assert kept is not None
    assert (kept.secret_key, kept.signing_secret) == (SECRET_KEY, SIGNING_SECRET)


def test_first_save_needs_the_secret_key(
    client: TestClient, runtime: Runtime, merchant: MerchantCtx
) -> None:
    before = rows(runtime.engine)
    r = client.put(url(merchant), json=VALID_STAGE, headers=merchant.auth)
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "secret_key"
    assert "secret key is missing" in r.json()["error"]["message"]
    assert rows(runtime.engine) == before


def test_data_set_without_signing_secret_is_saved_and_health_says_what_is_missing(
    client: TestClient, merchant: MerchantCtx
) -> None:
    body = {**VALID_STAGE, "secret_key": SECRET_KEY}
    r = client.put(url(merchant), json=body, headers=merchant.auth)
    assert r.status_code == 200, r.text
    shown = r.json()
    assert shown["webhook_signing_secret"] is None
    assert shown["health"]["status"] == "incomplete"
    assert shown["health"]["missing"] == ["webhook_signing_secret"]
    assert "webhook signing secret is missing" in shown["health"]["message"]
    assert shown["webhook_url"].endswith(f"/webhooks/stripe/{merchant.id}/stage")

    r = client.put(
        url(merchant),
        json={**VALID_STAGE, "webhook_signing_secret": SIGNING_SECRET},
        headers=merchant.auth,
    )
    assert r.status_code == 200, r.text
    assert r.json()["health"]["missing"] == []
    assert r.json()["health"]["status"] == "unverified"
    assert r.json()["webhook_signing_secret"] == "whsec_…" + SIGNING_SECRET[-4:]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**VALID_STAGE, "secret_key": 12345}, "secret_key"),
        ({**VALID_STAGE, "signing_secret": SIGNING_SECRET}, "signing_secret"),
        ({**VALID_STAGE, "account_id": ["acct_1"]}, "account_id"),
    ],
)
def test_malformed_bodies_are_json_422_without_echoing_input(
    client: TestClient, runtime: Runtime, merchant: MerchantCtx, body: dict[str, Any], field: str
) -> None:
    before = rows(runtime.engine)
    r = client.put(url(merchant), json=body, headers=merchant.auth)
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["field"] == field
    assert error["message"]
    assert SIGNING_SECRET not in r.text and "12345" not in r.text
    assert rows(runtime.engine) == before


def test_body_that_is_not_json_and_unknown_env_are_json_errors(
    client: TestClient, merchant: MerchantCtx
) -> None:
    r = client.put(
        url(merchant),
        content=b'{"secret_key": "' + SECRET_KEY.encode(),
        headers={**merchant.auth, "content-type": "application/json"},
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_request"
    assert SECRET_KEY not in r.text
    r = client.put(url(merchant, "prod"), json=valid("stage"), headers=merchant.auth)
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "env"


# ---- through the CLI --------------------------------------------------------------------


def cli_set(settings: Settings, merchant_id: str, env: str, data: dict[str, str]) -> Any:
    # Secrets through the environment, as an operator would pass them.
    return run_cli(
        [
            "stripe",
            "set",
            "--merchant",
            merchant_id,
            "--env",
            env,
            "--account-id",
            data["account_id"],
            "--publishable-key",
            data["publishable_key"],
        ],
        cli_env(
            settings,
            MERCHANT_BACKEND_SECRET_KEY=data["secret_key"],
            MERCHANT_BACKEND_SIGNING_SECRET=data["webhook_signing_secret"],
        ),
    )


CLI_CASES = [c for c in API_CASES if "\n" not in c[2]]


@pytest.mark.parametrize("case", CLI_CASES, ids=case_id)
def test_cli_rejects_a_field_with_exit_2_and_stores_nothing(
    settings: Settings, runtime: Runtime, merchant: MerchantCtx, case: tuple[str, Env, str, str]
) -> None:
    field, env, value, _ = case
    before = rows(runtime.engine)
    result = cli_set(settings, merchant.id, env, with_field(env, field, value))
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    message = CHECKS[field](value, env)
    error = json.loads(result.stderr)["error"]
    assert (error["code"], error["field"], error["message"]) == ("invalid_request", field, message)
    assert error["errors"] == [{"field": field, "message": message}]
    assert rows(runtime.engine) == before


def test_cli_rejected_update_keeps_what_was_stored(
    settings: Settings, runtime: Runtime, merchant: MerchantCtx
) -> None:
    assert cli_set(settings, merchant.id, "live", valid("live")).exit_code == 0
    before = rows(runtime.engine)
    bad = {**valid("live"), "secret_key": "sk_test_" + BODY, "account_id": "acct_1Other"}
    result = cli_set(settings, merchant.id, "live", bad)
    assert result.exit_code == 2
    error = json.loads(result.stderr)["error"]
    assert error["field"] == "secret_key"
    assert (
        "secret key is a test key (sk_test_…) but this is the live environment" in error["message"]
    )
    assert rows(runtime.engine) == before


def test_cli_unknown_environment_is_bad_input(settings: Settings, merchant: MerchantCtx) -> None:
    result = run_cli(
        ["stripe", "show", "--merchant", merchant.id, "--env", "prod"], cli_env(settings)
    )
    assert result.exit_code == 2
    assert json.loads(result.stderr)["error"]["field"] == "env"
