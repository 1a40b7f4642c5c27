"""The command line: JSON on stdout, the API's error JSON on stderr, exit 0 ok / 2 bad input /
1 other failure; merchants, data sets, the signing secret roll, event replay; secrets from
stdin or the environment. Mostly in-process, and once as the real installed program."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from merchant_backend.crypto import generate_key
from merchant_backend.runtime import Runtime
from merchant_backend.settings import Settings
from merchant_backend.store import datasets, db
from merchant_backend.sync.worker import Worker
from tests import stripe_factory as sf
from tests.conftest import LIVE_SECRET_KEY, SECRET_KEY, SIGNING_SECRET, FakeClock, MerchantCtx
from tests.foundation_helpers import (
    VALID_LIVE,
    VALID_STAGE,
    cli_env,
    rows,
    run_cli,
    run_cli_process,
)

NEW_SECRET = "whsec_" + "N3wS3cr3t" * 4


def ok(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    # stderr carries structured logs only (alembic's, for migrate), never an error.
    for line in result.stderr.splitlines():
        assert set(json.loads(line)) >= {"event", "level"}, line
    return json.loads(result.stdout)


def bad(result: Any, code: int = 2) -> dict[str, Any]:
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    error: dict[str, Any] = json.loads(result.stderr)["error"]
    assert set(error) >= {"code", "message", "field"}
    return error


def set_args(merchant_id: str, env: str = "stage", **extra: str) -> list[str]:
    values = VALID_STAGE if env == "stage" else VALID_LIVE
    args = ["stripe", "set", "--merchant", merchant_id, "--env", env]
    args += ["--account-id", values["account_id"], "--publishable-key", values["publishable_key"]]
    for option, value in extra.items():
        args += [f"--{option.replace('_', '-')}", value]
    return args


def stored_secrets(runtime: Runtime, merchant_id: str, env: str) -> datasets.DataSetSecrets:
    with db.read(runtime.engine) as conn:
        found = datasets.secrets(conn, runtime.keys.for_token, merchant_id, env)
    assert found is not None
    return found


# ---- merchants ----------------------------------------------------------------------------


def test_merchants_create_and_list(
    settings: Settings, runtime: Runtime, client: TestClient
) -> None:
    env = cli_env(settings)
    created = ok(run_cli(["merchants", "create", "--name", "Corner Shop"], env))
    assert set(created) == {"id", "name", "api_token"}
    assert created["name"] == "Corner Shop" and created["id"].startswith("mer_")
    second = ok(run_cli(["merchants", "create", "--name", "Second"], env))
    listed = ok(run_cli(["merchants", "list"], env))
    assert [m["id"] for m in listed] == [created["id"], second["id"]]
    assert all(set(m) == {"id", "name", "created", "disabled"} for m in listed)
    assert not any(m["disabled"] for m in listed)
    # The token is shown once, and it is the merchant's key to the API.
    auth = {"Authorization": f"Bearer {created['api_token']}"}
    r = client.put(
        f"/api/v1/merchants/{created['id']}/stripe/stage",
        json={**VALID_STAGE, "secret_key": SECRET_KEY},
        headers=auth,
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_merchant_name_must_be_sensible(settings: Settings, runtime: Runtime, name: str) -> None:
    before = rows(runtime.engine)
    error = bad(run_cli(["merchants", "create", "--name", name], cli_env(settings)))
    assert error["field"] == "name"
    assert rows(runtime.engine) == before


# ---- data sets ----------------------------------------------------------------------------


def test_stripe_set_and_show(settings: Settings, runtime: Runtime, merchant: MerchantCtx) -> None:
    env = cli_env(settings)
    shown = ok(run_cli(set_args(merchant.id, secret_key=SECRET_KEY), env))
    assert shown["account_id"] == VALID_STAGE["account_id"]
    assert shown["secret_key"] == "sk_test_…" + SECRET_KEY[-4:]
    assert shown["webhook_signing_secret"] is None
    assert shown["health"]["missing"] == ["webhook_signing_secret"]
    assert shown["webhook_url"] == (
        f"https://merchant-backend.example/webhooks/stripe/{merchant.id}/stage"
    )
    again = ok(run_cli(["stripe", "show", "--merchant", merchant.id, "--env", "stage"], env))
    assert again == shown
    # Secrets left out keep their stored values; a signing secret can come later.
    later = ok(run_cli(set_args(merchant.id, signing_secret=SIGNING_SECRET), env))
    assert later["health"]["missing"] == []
    got = stored_secrets(runtime, merchant.id, "stage")
    assert (got.secret_key, got.signing_secret) == (SECRET_KEY, SIGNING_SECRET)


def test_secrets_from_stdin_and_from_the_environment(
    settings: Settings, runtime: Runtime, merchant: MerchantCtx
) -> None:
    env = cli_env(settings)
    ok(
        run_cli(
            set_args(merchant.id, secret_key="-", signing_secret="-"),
            env,
            input=f"{SECRET_KEY}\r\n{SIGNING_SECRET}\n",
        )
    )
    got = stored_secrets(runtime, merchant.id, "stage")
    assert (got.secret_key, got.signing_secret) == (SECRET_KEY, SIGNING_SECRET)

    live_env = {
        **env,
        "MERCHANT_BACKEND_SECRET_KEY": LIVE_SECRET_KEY,
        "MERCHANT_BACKEND_SIGNING_SECRET": NEW_SECRET,
    }
    ok(run_cli(set_args(merchant.id, "live"), live_env))
    got = stored_secrets(runtime, merchant.id, "live")
    assert (got.secret_key, got.signing_secret) == (LIVE_SECRET_KEY, NEW_SECRET)

    # Only the signing secret on stdin: the secret key stays from the environment.
    only = {**env, "MERCHANT_BACKEND_SECRET_KEY": LIVE_SECRET_KEY}
    ok(run_cli(set_args(merchant.id, "live", signing_secret="-"), only, input=SIGNING_SECRET))
    assert stored_secrets(runtime, merchant.id, "live").signing_secret == SIGNING_SECRET


def test_asking_for_stdin_without_giving_it_is_bad_input(
    settings: Settings, runtime: Runtime, merchant: MerchantCtx
) -> None:
    error = bad(run_cli(set_args(merchant.id, secret_key="-"), cli_env(settings), input=""))
    assert "standard input" in error["message"]
    assert rows(runtime.engine)["stripe_datasets"] == []


def test_unknown_merchant_and_missing_data_set_are_bad_input(
    settings: Settings, runtime: Runtime, merchant: MerchantCtx
) -> None:
    env = cli_env(settings)
    error = bad(run_cli(set_args("mer_nope", secret_key=SECRET_KEY), env))
    assert error["code"] == "not_found" and "merchants list" in error["message"]
    error = bad(run_cli(["stripe", "show", "--merchant", merchant.id, "--env", "live"], env))
    assert "stripe set" in error["message"]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["stripe", "set", "--merchant", "mer_x"], "--env"),
        (["stripe", "show", "--merchant", "mer_x"], "--env"),
        (
            ["stripe", "roll-secret", "--merchant", "m", "--env", "stage", "--old-valid-for", "x"],
            "--old-valid-for",
        ),
        (["serve", "--port", "eighty"], "--port"),
        (["no-such-command"], None),
    ],
)
def test_usage_errors_are_json_with_exit_2(
    settings: Settings, args: list[str], field: str | None
) -> None:
    error = bad(run_cli(args, cli_env(settings)))
    assert error["code"] == "invalid_request"
    assert error["field"] == field


def test_help_still_works(settings: Settings) -> None:
    result = run_cli(["stripe", "--help"], cli_env(settings))
    assert result.exit_code == 0
    assert "roll-secret" in result.stdout


def test_other_failures_exit_1(
    settings: Settings, runtime: Runtime, merchant: MerchantCtx, tmp_path: Any
) -> None:
    # The database is not there.
    nowhere = cli_env(
        settings, MERCHANT_BACKEND_DATABASE_URL=f"sqlite:///{tmp_path}/no/such/dir.db"
    )
    error = bad(run_cli(["merchants", "list"], nowhere), code=1)
    assert error["code"] == "database_unavailable"
    assert "unable to open database file" in error["message"]
    assert "MERCHANT_BACKEND_DATABASE_URL" in error["message"]
    # The stored secrets were encrypted with another master key.
    env = cli_env(settings)
    ok(run_cli(set_args(merchant.id, secret_key=SECRET_KEY, signing_secret=SIGNING_SECRET), env))
    other_key = cli_env(settings, MERCHANT_BACKEND_MASTER_KEY=generate_key())
    roll = ["stripe", "roll-secret", "--merchant", merchant.id, "--env", "stage"]
    error = bad(run_cli([*roll, "--signing-secret", NEW_SECRET], other_key), code=1)
    assert "master key this process does not have" in error["message"]
    # A malformed master key.
    broken = cli_env(settings, MERCHANT_BACKEND_MASTER_KEY="not-a-key")
    error = bad(run_cli([*roll, "--signing-secret", NEW_SECRET], broken), code=1)
    assert error["code"] == "master_key"


def test_migrate_is_idempotent_and_hides_passwords(settings: Settings, db_kind: str) -> None:
    url = make_url(settings.database_url)
    if db_kind == "postgresql":
        # The local server trusts any password, so one can be shown to stay out of the output.
        url = url.set(password="pw-that-must-not-show")
    env = cli_env(settings, MERCHANT_BACKEND_DATABASE_URL=url.render_as_string(hide_password=False))
    first = run_cli(["migrate"], env)
    shown = ok(first)
    assert shown["migrated"] is True
    assert shown["database"] == url.render_as_string(hide_password=True)
    assert "pw-that-must-not-show" not in first.output
    assert ok(run_cli(["migrate"], env)) == shown


# ---- rolling the signing secret -----------------------------------------------------------


def _deliver(client: TestClient, merchant_id: str, secret: str, at: float) -> int:
    evt = sf.event("payment_intent.created", sf.obj("payment_intent"), created=int(at))
    raw, header = sf.signed(evt, secret, timestamp=int(at))
    r = client.post(
        f"/webhooks/stripe/{merchant_id}/stage", content=raw, headers={"Stripe-Signature": header}
    )
    return r.status_code


def test_roll_secret_keeps_the_old_one_valid_until_it_expires(
    settings: Settings,
    runtime: Runtime,
    client: TestClient,
    merchant: MerchantCtx,
    clock: FakeClock,
) -> None:
    env = cli_env(settings)
    ok(run_cli(set_args(merchant.id, secret_key=SECRET_KEY, signing_secret=SIGNING_SECRET), env))
    before = time.time()
    roll = ["stripe", "roll-secret", "--merchant", merchant.id, "--env", "stage"]
    shown = ok(run_cli([*roll, "--signing-secret", "-"], env, input=NEW_SECRET + "\n"))
    after = time.time()
    assert shown["webhook_signing_secret"] == "whsec_…" + NEW_SECRET[-4:]
    previous = shown["previous_signing_secret"]
    assert previous["masked"] == "whsec_…" + SIGNING_SECRET[-4:]
    assert int(before) + 86400 <= previous["expires_at"] <= after + 86400  # Stripe's default
    assert shown["health"]["previous_signing_secret_active"] is True
    got = stored_secrets(runtime, merchant.id, "stage")
    expires = got.previous_signing_secret_expires_at
    assert expires is not None
    assert got.signing_secrets(after) == [NEW_SECRET, SIGNING_SECRET]
    assert got.signing_secrets(expires + 1) == [NEW_SECRET]

    # What Stripe sees: both secrets sign valid deliveries until the old one expires.
    assert _deliver(client, merchant.id, NEW_SECRET, time.time()) == 200
    assert _deliver(client, merchant.id, SIGNING_SECRET, time.time()) == 200
    late = clock.set(expires + 5)
    assert _deliver(client, merchant.id, NEW_SECRET, late) == 200
    assert _deliver(client, merchant.id, SIGNING_SECRET, late) == 400


@pytest.mark.parametrize("seconds", ["86401", "-1"])
def test_roll_secret_allows_at_most_a_day(
    settings: Settings, runtime: Runtime, merchant: MerchantCtx, seconds: str
) -> None:
    env = cli_env(settings)
    ok(run_cli(set_args(merchant.id, secret_key=SECRET_KEY, signing_secret=SIGNING_SECRET), env))
    before = rows(runtime.engine)
    roll = ["stripe", "roll-secret", "--merchant", merchant.id, "--env", "stage"]
    error = bad(run_cli([*roll, "--signing-secret", NEW_SECRET, "--old-valid-for", seconds], env))
    assert error["field"] == "old_valid_for"
    assert "0 to 86400 seconds" in error["message"]
    assert rows(runtime.engine) == before


def test_roll_secret_with_zero_drops_the_old_secret_at_once(
    settings: Settings, runtime: Runtime, merchant: MerchantCtx
) -> None:
    env = {**cli_env(settings), "MERCHANT_BACKEND_SIGNING_SECRET": NEW_SECRET}
    ok(
        run_cli(
            set_args(merchant.id, secret_key=SECRET_KEY, signing_secret=SIGNING_SECRET),
            cli_env(settings),
        )
    )
    roll = ["stripe", "roll-secret", "--merchant", merchant.id, "--env", "stage"]
    shown = ok(run_cli([*roll, "--old-valid-for", "0"], env))
    assert shown["previous_signing_secret"] is None
    assert stored_secrets(runtime, merchant.id, "stage").signing_secrets(time.time()) == [
        NEW_SECRET
    ]


def test_roll_secret_rejects_a_bad_secret_and_needs_a_data_set(
    settings: Settings, runtime: Runtime, merchant: MerchantCtx
) -> None:
    env = cli_env(settings)
    roll = ["stripe", "roll-secret", "--merchant", merchant.id, "--env", "stage"]
    error = bad(run_cli([*roll, "--signing-secret", NEW_SECRET], env))
    assert "no stage data set" in error["message"]
    ok(run_cli(set_args(merchant.id, secret_key=SECRET_KEY, signing_secret=SIGNING_SECRET), env))
    error = bad(run_cli([*roll, "--signing-secret", SECRET_KEY], env))
    assert error["field"] == "webhook_signing_secret"
    assert SECRET_KEY not in json.dumps(error)
    assert stored_secrets(runtime, merchant.id, "stage").signing_secret == SIGNING_SECRET


# ---- events replay ------------------------------------------------------------------------


def test_events_replay(
    settings: Settings, client: TestClient, connected: MerchantCtx, worker: Worker
) -> None:
    evt = sf.event("payment_intent.succeeded", sf.obj("payment_intent", status="succeeded"))
    raw, header = sf.signed(evt, SIGNING_SECRET)
    url = f"/webhooks/stripe/{connected.id}/stage"
    assert client.post(url, content=raw, headers={"Stripe-Signature": header}).status_code == 200
    assert worker.drain() == 1
    env = cli_env(settings)
    replay = ["events", "replay", "--merchant", connected.id, "--env", "stage"]
    entry = ok(run_cli([*replay, evt["id"]], env))
    assert (entry["id"], entry["state"]) == (evt["id"], "pending")
    assert worker.drain() == 1
    error = bad(run_cli([*replay, "evt_unknown"], env))
    assert error["code"] == "not_found"
    error = bad(
        run_cli(["events", "replay", "--merchant", connected.id, "--env", "test", "evt_1"], env)
    )
    assert error["field"] == "env"


# ---- the real program ---------------------------------------------------------------------


def test_the_installed_program(settings: Settings, runtime: Runtime) -> None:
    env = cli_env(settings)
    done = run_cli_process(["merchants", "create", "--name", "Real Shop"], env)
    assert done.returncode == 0, done.stderr
    merchant = json.loads(done.stdout)
    args = set_args(merchant["id"], secret_key="-", signing_secret="-")
    done = run_cli_process(args, env, input=f"{SECRET_KEY}\n{SIGNING_SECRET}\n")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["secret_key"] == "sk_test_…" + SECRET_KEY[-4:]
    got = stored_secrets(runtime, merchant["id"], "stage")
    assert (got.secret_key, got.signing_secret) == (SECRET_KEY, SIGNING_SECRET)

    done = run_cli_process(set_args(merchant["id"], "live", secret_key=SECRET_KEY), env)
    assert done.returncode == 2
    assert done.stdout == ""
    error = json.loads(done.stderr)["error"]
    assert error["field"] == "secret_key"
    assert "stage" not in error["message"] or "live environment" in error["message"]

    done = run_cli_process(["stripe", "show", "--merchant", merchant["id"]], env)
    assert done.returncode == 2
    assert json.loads(done.stderr)["error"]["field"] == "--env"
