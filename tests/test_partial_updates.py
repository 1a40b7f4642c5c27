"""Partial updates of a data set: only the fields given change, the data set as it would be
after the change is validated as a whole, and a rejected change stores nothing. ``stripe set``
(the finding: adding the signing secret later failed with "Missing option '--account-id'"),
the store rule for any subset of fields (Hypothesis), PATCH and PUT."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from merchant_backend.errors import InvalidInput
from merchant_backend.runtime import Runtime
from merchant_backend.settings import Settings
from merchant_backend.store import datasets, db
from merchant_backend.validation import DataSetInput, validate_data_set
from tests.conftest import SECRET_KEY, SIGNING_SECRET, MerchantCtx
from tests.foundation_helpers import VALID_STAGE, cli_env, rows, run_cli

NEW_SECRET = "whsec_" + "N3wS3cr3t" * 4
OTHER_KEY = "sk_test_" + "Z" * 24 + "1111"


def stripe_set(merchant_id: str, *options: str) -> list[str]:
    return ["stripe", "set", "--merchant", merchant_id, "--env", "stage", *options]


def stored(runtime: Runtime, merchant_id: str) -> tuple[datasets.StoredDataSet, Any]:
    with db.read(runtime.engine) as conn:
        shown = datasets.get(conn, merchant_id, "stage")
        secrets = datasets.secrets(conn, runtime.keys.for_token, merchant_id, "stage")
    assert shown is not None and secrets is not None
    return shown, secrets


def test_the_signing_secret_alone_can_be_added_later(
    settings: Settings, runtime: Runtime, merchant: MerchantCtx
) -> None:
    env = cli_env(settings)
    first = stripe_set(
        merchant.id,
        "--account-id", VALID_STAGE["account_id"],
        "--publishable-key", VALID_STAGE["publishable_key"],
        "--secret-key", SECRET_KEY,
    )  # fmt: skip
    assert run_cli(first, env).exit_code == 0
    before, _ = stored(runtime, merchant.id)
    assert before.health()["status"] == "incomplete"

    done = run_cli(stripe_set(merchant.id, "--signing-secret", "-"), env, input=SIGNING_SECRET)
    assert done.exit_code == 0, done.output
    after, secrets = stored(runtime, merchant.id)
    assert (after.account_id, after.publishable_key) == (
        VALID_STAGE["account_id"],
        VALID_STAGE["publishable_key"],
    )
    assert (secrets.secret_key, secrets.signing_secret) == (SECRET_KEY, SIGNING_SECRET)
    assert json.loads(done.stdout)["health"]["status"] == "unverified"


def test_one_field_changes_and_the_rest_is_kept(
    settings: Settings, runtime: Runtime, connected: MerchantCtx
) -> None:
    env = cli_env(settings)
    _, before = stored(runtime, connected.id)
    done = run_cli(stripe_set(connected.id, "--secret-key", OTHER_KEY), env)
    assert done.exit_code == 0, done.output
    _, after = stored(runtime, connected.id)
    assert after.secret_key == OTHER_KEY
    assert (after.account_id, after.publishable_key, after.signing_secret) == (
        before.account_id,
        before.publishable_key,
        before.signing_secret,
    )


def test_a_wrong_field_stores_nothing(
    settings: Settings, runtime: Runtime, connected: MerchantCtx
) -> None:
    env = cli_env(settings)
    snapshot = rows(runtime.engine)
    # A live publishable key in the stage data set: the merged data set is refused.
    done = run_cli(
        stripe_set(
            connected.id,
            "--publishable-key", "pk_live_TYooMQauvdEDq54NiTphI7jx",
            "--signing-secret", NEW_SECRET,
        ),
        env,
    )  # fmt: skip
    assert done.exit_code == 2 and done.stdout == ""
    error = json.loads(done.stderr)["error"]
    assert error["field"] == "publishable_key"
    assert "live key" in error["message"]
    assert rows(runtime.engine) == snapshot


def test_a_new_data_set_needs_its_fields_and_says_which(
    settings: Settings, runtime: Runtime, merchant: MerchantCtx
) -> None:
    done = run_cli(stripe_set(merchant.id, "--signing-secret", SIGNING_SECRET), cli_env(settings))
    assert done.exit_code == 2
    error = json.loads(done.stderr)["error"]
    assert [e["field"] for e in error["errors"]] == ["account_id", "publishable_key", "secret_key"]
    with db.read(runtime.engine) as conn:
        assert datasets.get(conn, merchant.id, "stage") is None


# ---- the rule, for every subset of fields ----------------------------------------------------

GOOD = {
    "account_id": "acct_1NewAcct2",
    "publishable_key": "pk_test_" + "P" * 24,
    "secret_key": OTHER_KEY,
    "webhook_signing_secret": NEW_SECRET,
}
BAD = {
    "account_id": "acct_",
    "publishable_key": "pk_live_" + "P" * 24,
    "secret_key": "sk_live_" + "S" * 24,
    "webhook_signing_secret": "whsec_x",
}
FIELDS = tuple(GOOD)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(choice=st.dictionaries(st.sampled_from(FIELDS), st.sampled_from(["good", "bad"])))
def test_any_subset_of_fields(
    runtime: Runtime, connected: MerchantCtx, choice: dict[str, str]
) -> None:
    given_values = {f: (GOOD if how == "good" else BAD)[f] for f, how in choice.items()}
    with db.read(runtime.engine) as conn:
        old = datasets.secrets(conn, runtime.keys.for_token, connected.id, "stage")
    assert old is not None
    old_values = {
        "account_id": old.account_id,
        "publishable_key": old.publishable_key,
        "secret_key": old.secret_key,
        "webhook_signing_secret": old.signing_secret,
    }
    # The oracle: the whole data set after the change, validated by the pure rules.
    expected = {**old_values, **given_values}
    problems = validate_data_set(DataSetInput(**expected), "stage")
    before = rows(runtime.engine)
    data = DataSetInput(**{f: given_values.get(f) for f in FIELDS})
    try:
        with db.write(runtime.engine) as conn:
            datasets.save(conn, runtime.keys.get(), connected.id, "stage", data, partial=True)
    except InvalidInput as exc:
        assert problems, "refused a valid data set"
        assert {e.field for e in exc.errors} == {e.field for e in problems}
        assert rows(runtime.engine) == before
        return
    assert not problems, "stored an invalid data set"
    with db.read(runtime.engine) as conn:
        new = datasets.secrets(conn, runtime.keys.for_token, connected.id, "stage")
    assert new is not None
    assert {
        "account_id": new.account_id,
        "publishable_key": new.publishable_key,
        "secret_key": new.secret_key,
        "webhook_signing_secret": new.signing_secret,
    } == expected
    # Put the data set back for the next example (the fixture runs once per test).
    with db.write(runtime.engine) as conn:
        datasets.save(conn, runtime.keys.get(), connected.id, "stage", DataSetInput(**old_values))


def test_a_full_save_without_partial_still_needs_the_fields(
    runtime: Runtime, connected: MerchantCtx
) -> None:
    """PUT keeps its meaning: the non-secret fields are the data set, not left to the store."""
    data = DataSetInput(None, None, None, NEW_SECRET)
    with pytest.raises(InvalidInput) as info, db.write(runtime.engine) as conn:
        datasets.save(conn, runtime.keys.get(), connected.id, "stage", data)
    assert [e.field for e in info.value.errors] == ["account_id", "publishable_key"]
