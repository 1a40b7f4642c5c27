"""``merchant-backend destinations add|list|update|remove|rotate-secret|test`` and the
master-key rotation of destination secrets. On SQLite and PostgreSQL (``--db``)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from merchant_backend.crypto import generate_key
from merchant_backend.runtime import Runtime
from merchant_backend.settings import Settings
from merchant_backend.store import db
from merchant_backend.store import destinations as destination_store
from merchant_backend.store.schema import outbound_destinations
from tests.foundation_helpers import cli_env, run_cli
from tests.outbound_support import Receiver
from tests.webhook_support import connected_merchant


@pytest.fixture
def rcv() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_destinations_from_the_command_line(
    settings: Settings, runtime: Runtime, rcv: Receiver
) -> None:
    m = connected_merchant(runtime)
    env = cli_env(settings, MERCHANT_BACKEND_OUTBOUND_ALLOW_PRIVATE="true")
    who = ["--merchant", m.id, "--env", "stage"]
    added = run_cli(
        ["destinations", "add", *who, "--url", rcv.url, "--object-types", "dispute,customer"], env
    )
    assert added.exit_code == 0, added.output
    made = json.loads(added.stdout)
    assert made["secret"].startswith("whsec_") and made["object_types"] == ["customer", "dispute"]
    rcv.secret = made["secret"]

    listed = json.loads(run_cli(["destinations", "list", *who], env).stdout)
    assert [d["id"] for d in listed] == [made["id"]] and "secret" not in listed[0]

    tested = run_cli(["destinations", "test", *who, made["id"]], env)
    assert tested.exit_code == 0, tested.output
    assert json.loads(tested.stdout)["outcome"] == "delivered"
    assert rcv.received[-1].message["type"] == "test"

    off = run_cli(
        ["destinations", "update", *who, made["id"], "--disable", "--description", "paused"], env
    )
    assert off.exit_code == 0, off.output
    assert (
        json.loads(off.stdout)["enabled"] is False
        and json.loads(off.stdout)["description"] == "paused"
    )

    rotated = run_cli(["destinations", "rotate-secret", *who, made["id"]], env)
    new_secret = json.loads(rotated.stdout)["secret"]
    assert new_secret != made["secret"]
    # The receiver still has the old secret: the test is refused, and the command says so.
    failed = run_cli(["destinations", "test", *who, made["id"]], env)
    assert failed.exit_code == 1 and json.loads(failed.stdout)["status_code"] == 400

    removed = run_cli(["destinations", "remove", *who, made["id"]], env)
    assert removed.exit_code == 0 and json.loads(removed.stdout)["deleted"] is True
    missing = run_cli(["destinations", "remove", *who, made["id"]], env)
    assert missing.exit_code == 2 and json.loads(missing.stderr)["error"]["code"] == "not_found"


def test_command_line_refusals(settings: Settings, runtime: Runtime) -> None:
    m = connected_merchant(runtime)
    env = cli_env(settings)
    bad = run_cli(
        ["destinations", "add", "--merchant", m.id, "--env", "live", "--url", "http://127.0.0.1/x"],
        env,
    )
    assert bad.exit_code == 2
    assert json.loads(bad.stderr)["error"]["field"] == "url"
    neither = run_cli(["destinations", "list", "--env", "live"], env)
    assert (
        neither.exit_code == 2
        and "--installation" in json.loads(neither.stderr)["error"]["message"]
    )
    nobody = run_cli(["destinations", "list", "--merchant", "mer_nope", "--env", "live"], env)
    assert nobody.exit_code == 2
    assert (
        json.loads(run_cli(["destinations", "list", "--installation", "--env", "live"], env).stdout)
        == []
    )


def test_master_key_rotation_reencrypts_destination_secrets(
    settings: Settings, runtime: Runtime
) -> None:
    old_key, new_key = generate_key(), generate_key()
    old = settings.model_copy(
        update={"master_key": SecretStr(old_key), "outbound_allow_private": True}
    )
    rt = Runtime(old, engine=runtime.engine)
    m = connected_merchant(rt)
    with db.write(rt.engine) as conn:
        dest = destination_store.create(
            conn,
            rt.keys.get(),
            merchant_id=m.id,
            env="stage",
            url="https://hooks.example/",
            description="",
            object_types=destination_store.OBJECT_TYPES,
            secret="whsec_" + "A" * 44,
        )
    both = old.model_copy(update={"master_key": SecretStr(f"{new_key},{old_key}")})
    result = run_cli(["rotate-master-key"], cli_env(both))
    assert result.exit_code == 0, result.output
    only_new = Runtime(
        old.model_copy(update={"master_key": SecretStr(new_key)}), engine=runtime.engine
    )
    with rt.engine.connect() as conn:
        token = conn.execute(outbound_destinations.select()).one().secret_enc
    assert (
        destination_store.secret_of(only_new.keys.get(), dest.id, m.id, "stage", token)
        == "whsec_" + "A" * 44
    )
