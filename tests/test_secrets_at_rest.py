"""Secrets at rest and in transit to people: encrypted in the database (no encoding of them in
the raw file, the WAL or a dump), bound to their row, readable across master key rotations,
and never shown whole by the API, the CLI, the logs or the process list."""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import shutil
import stat
import string
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, inspect, select, text, update
from sqlalchemy.engine import make_url

from merchant_backend import logs
from merchant_backend.crypto import (
    DecryptionError,
    Keyring,
    MasterKeyError,
    generate_key,
    key_id,
    load_or_create_key_file,
    parse_keys,
    write_key_file,
)
from merchant_backend.runtime import KeyringSource, Runtime
from merchant_backend.settings import Settings
from merchant_backend.store import datasets, db
from merchant_backend.store import merchants as merchant_store
from merchant_backend.store.schema import stripe_datasets
from merchant_backend.validation import DataSetInput, Env
from tests.conftest import MerchantCtx, make_merchant
from tests.foundation_helpers import cli_env, leaks, run_cli, run_cli_process

ALNUM = string.ascii_letters + string.digits


def random_body(n: int = 32) -> str:
    return "".join(secrets.choice(ALNUM) for _ in range(n))


def new_secrets(env: Env) -> dict[str, str]:
    mode = "test" if env == "stage" else "live"
    return {
        "account_id": f"acct_1{random_body(15)}",
        "publishable_key": f"pk_{mode}_{random_body(40)}",
        "secret_key": f"sk_{mode}_{random_body(40)}",
        "webhook_signing_secret": f"whsec_{random_body(32)}",
    }


def test_the_needles_find_a_secret_in_every_encoding_and_position() -> None:
    secret = "sk_test_" + random_body(40)
    raw = secret.encode()
    for pad in range(4):
        around = os.urandom(pad)
        for blob in (
            raw,
            secret.encode("utf-16-le"),
            raw.hex().encode(),
            raw.hex().upper().encode(),
            base64.b64encode(around + raw + around),
            base64.urlsafe_b64encode(around + raw),
            base64.b64encode(around + random_body(40).encode() + raw[8:]),  # the body alone
        ):
            assert leaks(b"x" * pad + blob + b"y", [secret]) == [secret]
    assert leaks(os.urandom(4096), [secret]) == []


# ---- a database full of secrets -----------------------------------------------------------


@dataclass
class World:
    merchants: list[MerchantCtx]
    secret_values: list[str]  # must never be found
    public_values: list[str]  # must be found: proves we look at the right bytes


def _save(rt: Runtime, merchant_id: str, env: Env, values: dict[str, str]) -> None:
    with db.write(rt.engine) as conn:
        datasets.save(conn, rt.keys.get(), merchant_id, env, DataSetInput(**values))


@pytest.fixture
def world(runtime: Runtime) -> World:
    out = World([], [], [])
    for name in ("A", "B"):
        merchant = make_merchant(runtime, f"Shop {name}")
        out.merchants.append(merchant)
        out.secret_values.append(merchant.token)
        for env in ("stage", "live"):
            values = new_secrets(env)  # type: ignore[arg-type]
            _save(runtime, merchant.id, env, values)  # type: ignore[arg-type]
            out.secret_values += [values["secret_key"], values["webhook_signing_secret"]]
            out.public_values += [values["publishable_key"], values["account_id"]]
    # The other ways a secret gets in: a roll (the old one is kept) and provisioning.
    rolled = "whsec_" + random_body(32)
    provisioned = "whsec_" + random_body(32)
    with db.write(runtime.engine) as conn:
        ring = runtime.keys.get()
        datasets.roll_signing_secret(conn, ring, out.merchants[0].id, "stage", rolled, 3600)
        datasets.set_signing_secret(
            conn, ring, out.merchants[1].id, "live", provisioned, endpoint_id="we_123"
        )
    out.secret_values += [rolled, provisioned]
    return out


def every_column_as_bytes(engine: Engine) -> bytes:
    """SELECT every column of every table in the database (also tables added later)."""
    chunks: list[bytes] = []
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):  # noqa: S608
                for value in row:
                    if isinstance(value, bytes | bytearray | memoryview):
                        chunks.append(bytes(value))
                    elif value is not None:
                        chunks.append(str(value).encode())
    return b"\n".join(chunks)


def test_no_secret_in_any_column_of_any_table(runtime: Runtime, world: World) -> None:
    blob = every_column_as_bytes(runtime.engine)
    assert leaks(blob, world.public_values) == world.public_values
    assert leaks(blob, world.secret_values) == []


def test_no_secret_in_the_raw_sqlite_file_wal_or_sql_dump(
    runtime: Runtime, world: World, db_kind: str
) -> None:
    if db_kind != "sqlite":
        pytest.skip("the SQLite files exist only in the SQLite run")
    path = Path(make_url(runtime.settings.database_url).database or "")
    files = [str(p) for s in ("", "-wal", "-shm") if (p := Path(f"{path}{s}")).exists()]
    # Read by another process: closing a file descriptor of the database in this process
    # would drop all of this process's POSIX locks on it, and the next process to close its
    # connection would take itself for the last one and delete the WAL under the engine.
    raw = subprocess.run(["cat", *files], capture_output=True, check=True).stdout
    assert leaks(raw, world.public_values) == world.public_values
    assert leaks(raw, world.secret_values) == []
    raw_conn = runtime.engine.raw_connection()
    try:
        dump = "\n".join(raw_conn.driver_connection.iterdump()).encode()  # type: ignore[union-attr]
    finally:
        raw_conn.close()
    assert leaks(dump, world.public_values) == world.public_values
    assert leaks(dump, world.secret_values) == []


def test_no_secret_in_a_postgresql_dump(runtime: Runtime, world: World, db_kind: str) -> None:
    if db_kind != "postgresql":
        pytest.skip("pg_dump is for the PostgreSQL run")
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        pytest.skip("pg_dump is not on PATH; every column was checked by SELECT above")
    url = make_url(runtime.settings.database_url).set(drivername="postgresql")
    done = subprocess.run(
        [pg_dump, "--no-owner", url.render_as_string(hide_password=False)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    assert b"stripe_datasets" in done.stdout
    assert leaks(done.stdout, world.public_values) == world.public_values
    assert leaks(done.stdout, world.secret_values) == []


def test_api_tokens_are_stored_only_as_hashes(runtime: Runtime, world: World) -> None:
    with db.read(runtime.engine) as conn:
        for merchant in world.merchants:
            assert merchant_store.by_token(conn, merchant.token) is not None
            assert merchant_store.by_token(conn, merchant.token + "x") is None


# ---- a ciphertext belongs to its row ------------------------------------------------------


def _copy(engine: Engine, src: tuple[str, str, str], dst: tuple[str, str, str]) -> None:
    (src_m, src_env, src_col), (dst_m, dst_env, dst_col) = src, dst
    where = stripe_datasets.c.merchant_id, stripe_datasets.c.env
    with db.write(engine) as conn:
        token = conn.execute(
            select(stripe_datasets.c[src_col]).where(where[0] == src_m, where[1] == src_env)
        ).scalar_one()
        conn.execute(
            update(stripe_datasets)
            .where(where[0] == dst_m, where[1] == dst_env)
            .values({dst_col: token})
        )


@pytest.mark.parametrize(
    ("to_merchant", "to_env", "to_column", "field"),
    [
        (1, "stage", "secret_key_enc", "secret_key"),  # another merchant's row
        (0, "live", "secret_key_enc", "secret_key"),  # another environment
        (0, "stage", "signing_secret_enc", "signing_secret"),  # another field
    ],
)
def test_a_ciphertext_moved_to_another_row_does_not_decrypt(
    runtime: Runtime, world: World, to_merchant: int, to_env: str, to_column: str, field: str
) -> None:
    a, target = world.merchants[0].id, world.merchants[to_merchant].id
    _copy(runtime.engine, (a, "stage", "secret_key_enc"), (target, to_env, to_column))
    with db.read(runtime.engine) as conn, pytest.raises(DecryptionError) as caught:
        datasets.secrets(conn, runtime.keys.for_token, target, to_env)
    message = str(caught.value)
    assert message == (
        f"{field} of {target}/{to_env}: stored secret does not belong to this row or was altered"
    )
    assert leaks(message.encode(), world.secret_values) == []
    if (target, to_env) != (a, "stage"):  # the row it came from still reads
        with db.read(runtime.engine) as conn:
            assert datasets.secrets(conn, runtime.keys.for_token, a, "stage") is not None


def test_a_tampered_ciphertext_does_not_decrypt(runtime: Runtime, world: World) -> None:
    a = world.merchants[0].id
    with db.write(runtime.engine) as conn:
        token = conn.execute(
            select(stripe_datasets.c.secret_key_enc).where(
                stripe_datasets.c.merchant_id == a, stripe_datasets.c.env == "live"
            )
        ).scalar_one()
        flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
        conn.execute(
            update(stripe_datasets)
            .where(stripe_datasets.c.merchant_id == a, stripe_datasets.c.env == "live")
            .values(secret_key_enc=flipped)
        )
    with db.read(runtime.engine) as conn, pytest.raises(DecryptionError, match="was altered"):
        datasets.secrets(conn, runtime.keys.for_token, a, "live")


# ---- the master key -----------------------------------------------------------------------


def file_settings(settings: Settings, key_file: Path) -> Settings:
    return settings.model_copy(update={"master_key": None, "master_key_file": str(key_file)})


def read_all(engine: Engine, ring_for: Callable[[str], Keyring]) -> dict[tuple[str, str], Any]:
    out: dict[tuple[str, str], Any] = {}
    with db.read(engine) as conn:
        for row in conn.execute(select(stripe_datasets.c.merchant_id, stripe_datasets.c.env)):
            found = datasets.secrets(conn, ring_for, row.merchant_id, row.env)
            assert found is not None
            out[(row.merchant_id, row.env)] = (
                found.secret_key,
                found.signing_secret,
                found.previous_signing_secret,
            )
    return out


def stored_tokens(engine: Engine) -> list[str]:
    cols = [stripe_datasets.c[f"{f}_enc"] for f in datasets.SECRET_FIELDS]
    with db.read(engine) as conn:
        return [t for row in conn.execute(select(*cols)) for t in row if t]


def key_ids(engine: Engine) -> set[str]:
    return {t.split(":")[1] for t in stored_tokens(engine)}


def test_key_file_is_created_once_with_mode_0600_even_when_processes_race(
    tmp_path: Path,
) -> None:
    path = tmp_path / "merchant-backend.key"
    texts: list[str] = []
    barrier = threading.Barrier(8)

    def load() -> None:
        barrier.wait()
        texts.append(load_or_create_key_file(path))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(texts)) == 1 and len(parse_keys(texts[0])) == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_a_key_file_readable_by_others_is_refused(
    settings: Settings, runtime: Runtime, merchant: MerchantCtx, tmp_path: Path
) -> None:
    path = tmp_path / "mb.key"
    write_key_file(path, [generate_key()])
    path.chmod(0o644)
    with pytest.raises(MasterKeyError, match="chmod 600"):
        KeyringSource(file_settings(settings, path)).get()
    env = cli_env(file_settings(settings, path), MERCHANT_BACKEND_SECRET_KEY=None)
    result = run_cli(
        [
            "stripe",
            "roll-secret",
            "--merchant",
            merchant.id,
            "--env",
            "stage",
            "--signing-secret",
            "whsec_" + random_body(),
        ],
        env,
    )
    assert result.exit_code == 1
    assert json.loads(result.stderr)["error"]["code"] == "master_key"


def test_rotation_with_the_key_file_keeps_every_secret_readable_for_running_readers(
    settings: Settings,
    runtime: Runtime,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key_file = tmp_path / "merchant-backend.key"
    old_key = generate_key()
    write_key_file(key_file, [old_key])
    rt = Runtime(file_settings(settings, key_file), engine=runtime.engine)
    expected: dict[tuple[str, str], Any] = {}
    for name in ("A", "B", "C"):
        m = make_merchant(rt, name)
        for env in ("stage", "live"):
            values = new_secrets(env)  # type: ignore[arg-type]
            _save(rt, m.id, env, values)  # type: ignore[arg-type]
    with db.write(rt.engine) as conn:
        datasets.roll_signing_secret(conn, rt.keys.get(), m.id, "live", "whsec_" + random_body())
    expected = read_all(rt.engine, rt.keys.for_token)
    old_ring = Keyring((parse_keys(old_key)[0],))

    # A reader (think: the running service) loaded the keyring before the rotation began.
    reader = KeyringSource(file_settings(settings, key_file))
    assert reader.get().primary_id == old_ring.primary_id

    # Look in between the passes of the rotation, as a reader and as a stale writer would.
    late = {1: make_merchant(rt, "late 1"), 2: make_merchant(rt, "late 2")}
    real_reencrypt = datasets.reencrypt_all
    passes: list[int] = []

    def observed(conn: Any, ring: Keyring) -> int:
        n = len(passes)
        passes.append(n)
        assert read_all(rt.engine, reader.for_token) == expected
        file_keys = parse_keys(key_file.read_text())
        assert len(file_keys) == (2 if n < 2 else 1)
        if n in late:
            # A writer that still holds only the old key saves a data set meanwhile.
            values = new_secrets("stage")
            datasets.save(conn, old_ring, late[n].id, "stage", DataSetInput(**values))
            expected[(late[n].id, "stage")] = (
                values["secret_key"],
                values["webhook_signing_secret"],
                None,
            )
        return real_reencrypt(conn, ring)

    monkeypatch.setattr(datasets, "reencrypt_all", observed)
    env = cli_env(
        file_settings(settings, key_file),
        MERCHANT_BACKEND_MASTER_KEY=None,
        MERCHANT_BACKEND_MASTER_KEY_FILE=str(key_file),
    )
    result = run_cli(["rotate-master-key"], env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert passes == [0, 1, 2]
    assert report["reencrypted"] == 3 * 2 + 2  # every data set, and both late writes

    new_keys = parse_keys(key_file.read_text())
    assert len(new_keys) == 1 and new_keys[0] != old_ring.keys[0]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_ids(rt.engine) == {key_id(new_keys[0])} == {report["key_id"]}
    assert read_all(rt.engine, lambda _t: Keyring(tuple(new_keys))) == expected
    assert read_all(rt.engine, reader.for_token) == expected
    assert reader.get().primary_id == report["key_id"]
    with pytest.raises(DecryptionError, match="master key this process does not have"):
        read_all(rt.engine, lambda _t: old_ring)


def test_rotation_with_keys_in_the_environment(
    settings: Settings, runtime: Runtime, tmp_path: Path
) -> None:
    old_key, new_key = generate_key(), generate_key()
    old_settings = settings.model_copy(update={"master_key": SecretStr(old_key)})
    rt = Runtime(old_settings, engine=runtime.engine)
    for name in ("A", "B"):
        m = make_merchant(rt, name)
        for env in ("stage", "live"):
            _save(rt, m.id, env, new_secrets(env))  # type: ignore[arg-type]
    expected = read_all(rt.engine, rt.keys.for_token)

    # One key in the variable: there is nothing to rotate to, and the message says what to do.
    one = run_cli(["rotate-master-key"], cli_env(old_settings))
    assert one.exit_code == 2
    error = json.loads(one.stderr)["error"]
    assert "set it to 'NEW,OLD'" in error["message"]
    assert old_key not in one.stderr

    # Readers restarted with "NEW,OLD" read the old ciphertexts before and the new ones after.
    both = old_settings.model_copy(update={"master_key": SecretStr(f"{new_key},{old_key}")})
    reader = Runtime(both, engine=runtime.engine)
    assert read_all(rt.engine, reader.keys.for_token) == expected
    result = run_cli(["rotate-master-key"], cli_env(both))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["reencrypted"] == 4
    assert old_key not in result.stdout and new_key not in result.stdout
    assert read_all(rt.engine, reader.keys.for_token) == expected

    only_new = Runtime(
        old_settings.model_copy(update={"master_key": SecretStr(new_key)}), engine=runtime.engine
    )
    assert read_all(rt.engine, only_new.keys.for_token) == expected
    assert key_ids(rt.engine) == {only_new.keys.get().primary_id}
    with pytest.raises(DecryptionError):
        read_all(rt.engine, rt.keys.for_token)


# ---- never shown whole --------------------------------------------------------------------


@contextmanager
def json_logs() -> Iterator[None]:
    """The service's log set-up, writing into whatever ``sys.stderr`` is now; then put back.

    Entered inside the test body: pytest swaps the captured streams between set-up and call.
    """
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    config = structlog.get_config()
    logs.setup("DEBUG", True)
    try:
        yield
    finally:
        root.handlers, root.level = handlers, level
        structlog.configure(**config)


def test_api_shows_secrets_masked_only(
    client: TestClient, runtime: Runtime, merchant: MerchantCtx
) -> None:
    values = new_secrets("stage")
    url = f"/api/v1/merchants/{merchant.id}/stripe/stage"
    answers = [client.put(url, json=values, headers=merchant.auth)]
    answers.append(client.get(url, headers=merchant.auth))
    shown = answers[-1].json()
    assert shown["secret_key"] == "sk_test_…" + values["secret_key"][-4:]
    assert shown["webhook_signing_secret"] == "whsec_…" + values["webhook_signing_secret"][-4:]
    assert shown["publishable_key"] == values["publishable_key"]
    # Errors about secrets do not quote them either.
    wrong = {**values, "secret_key": "sk_live_" + random_body(40)}
    answers.append(client.put(url, json=wrong, headers=merchant.auth))
    assert answers[-1].status_code == 422
    answers.append(client.get("/openapi.json"))
    everything = b"".join(a.content for a in answers)
    assert (
        leaks(
            everything,
            [values["secret_key"], values["webhook_signing_secret"], wrong["secret_key"]],
        )
        == []
    )


def test_cli_shows_secrets_masked_only(
    settings: Settings, runtime: Runtime, merchant: MerchantCtx
) -> None:
    values = new_secrets("live")
    rolled = "whsec_" + random_body()
    env = cli_env(settings)
    common = ["--merchant", merchant.id, "--env", "live"]
    stripe_set = [
        *("stripe", "set", *common),
        *("--account-id", values["account_id"]),
        *("--publishable-key", values["publishable_key"]),
        *("--secret-key", "-"),
    ]
    results = [
        run_cli(
            [*stripe_set, "--signing-secret", "-"],
            env,
            input=f"{values['secret_key']}\n{values['webhook_signing_secret']}\n",
        ),
        run_cli(["stripe", "show", *common], env),
        run_cli(["stripe", "roll-secret", *common, "--signing-secret", "-"], env, input=rolled),
        run_cli(["stripe", "show", *common], env),
        run_cli(["merchants", "list"], env),
    ]
    assert [r.exit_code for r in results] == [0] * 5, [r.output for r in results]
    shown = json.loads(results[-2].stdout)
    assert shown["secret_key"] == "sk_live_…" + values["secret_key"][-4:]
    assert shown["webhook_signing_secret"] == "whsec_…" + rolled[-4:]
    assert shown["previous_signing_secret"]["masked"] == (
        "whsec_…" + values["webhook_signing_secret"][-4:]
    )
    output = "".join(r.stdout + r.stderr for r in results).encode()
    secret_values = [values["secret_key"], values["webhook_signing_secret"], rolled, merchant.token]
    assert leaks(output, secret_values) == []
    # A rejected secret is not echoed in the error.
    bad = "rk_test_" + random_body(40)
    failed = run_cli(stripe_set, env, input=bad + "\n")
    assert failed.exit_code == 2
    assert leaks((failed.stdout + failed.stderr).encode(), [bad]) == []


def test_logs_carry_no_secret(
    client: TestClient,
    runtime: Runtime,
    merchant: MerchantCtx,
    capsys: pytest.CaptureFixture[str],
) -> None:
    values = new_secrets("stage")
    url = f"/api/v1/merchants/{merchant.id}/stripe/stage"
    with json_logs():
        assert client.put(url, json=values, headers=merchant.auth).status_code == 200
        wrong = {**values, "publishable_key": values["secret_key"]}
        assert client.put(url, json=wrong, headers=merchant.auth).status_code == 422
        # What reaches the logs when something goes wrong: a log call with a secret in it,
        # and a traceback (as uvicorn logs one) whose exception message quotes a secret.
        logs.get("test").warning("careless", detail=f"key was {values['secret_key']}")
        try:
            raise RuntimeError(f"failed with {values['webhook_signing_secret']}")
        except RuntimeError:
            logging.getLogger("uvicorn.error").exception("Exception in ASGI application")
    captured = capsys.readouterr().err
    lines = [json.loads(line) for line in captured.splitlines() if line.strip()]
    assert any(line.get("event") == "careless" for line in lines)
    assert any(
        "RuntimeError: failed with whsec_[redacted]" in line.get("exception", "") for line in lines
    )
    assert leaks(captured.encode(), [values["secret_key"], values["webhook_signing_secret"]]) == []


def test_secrets_reach_the_cli_without_the_process_list(
    settings: Settings, runtime: Runtime, merchant: MerchantCtx
) -> None:
    """A real process: the secrets come from stdin and the environment, never argv."""
    stage, live = new_secrets("stage"), new_secrets("live")
    env = cli_env(settings)
    runs = [
        (
            [
                "stripe",
                "set",
                "--merchant",
                merchant.id,
                "--env",
                "stage",
                "--account-id",
                stage["account_id"],
                "--publishable-key",
                stage["publishable_key"],
                "--secret-key",
                "-",
                "--signing-secret",
                "-",
            ],
            env,
            f"{stage['secret_key']}\n{stage['webhook_signing_secret']}\n",
        ),
        (
            [
                "stripe",
                "set",
                "--merchant",
                merchant.id,
                "--env",
                "live",
                "--account-id",
                live["account_id"],
                "--publishable-key",
                live["publishable_key"],
            ],
            {
                **env,
                "MERCHANT_BACKEND_SECRET_KEY": live["secret_key"],
                "MERCHANT_BACKEND_SIGNING_SECRET": live["webhook_signing_secret"],
            },
            None,
        ),
    ]
    secret_values = [stage["secret_key"], stage["webhook_signing_secret"]]
    secret_values += [live["secret_key"], live["webhook_signing_secret"]]
    for args, run_env, stdin in runs:
        assert leaks(" ".join(args).encode(), secret_values) == []
        done = run_cli_process(args, run_env, input=stdin)
        assert done.returncode == 0, done.stderr
        assert leaks((done.stdout + done.stderr).encode(), secret_values) == []
    with db.read(runtime.engine) as conn:
        got_stage = datasets.secrets(conn, runtime.keys.for_token, merchant.id, "stage")
        got_live = datasets.secrets(conn, runtime.keys.for_token, merchant.id, "live")
    assert got_stage is not None and got_live is not None
    assert (got_stage.secret_key, got_stage.signing_secret) == (
        stage["secret_key"],
        stage["webhook_signing_secret"],
    )
    assert (got_live.secret_key, got_live.signing_secret) == (
        live["secret_key"],
        live["webhook_signing_secret"],
    )
    assert "secrets=<hidden>" in repr(got_live) and live["secret_key"] not in repr(got_live)
