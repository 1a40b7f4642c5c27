"""The optional config file (``MERCHANT_BACKEND_CONFIG``, default ``./merchant-backend.env``)
and what ``merchant-backend config`` reports: the environment wins over the file, the file over
the defaults; a typo, a missing named file, a bad value or a secret in a file others may read
is refused with a message naming it; the report names each setting's source and shows no
secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from merchant_backend import config_report
from merchant_backend.crypto import generate_key
from merchant_backend.runtime import Runtime
from merchant_backend.settings import ConfigError, Settings, config_file, load

ADMIN = "admin-token-" + "x" * 20 + "WXYZ"


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean working directory and an environment without MERCHANT_BACKEND_* variables."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("MERCHANT_BACKEND_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_no_file_means_defaults(here: Path) -> None:
    settings, found = load()
    assert settings == Settings()
    assert found.chosen_by == "default" and not found.exists
    assert found.path == here / "merchant-backend.env"


def test_the_default_file_is_read_and_the_environment_wins(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        here / "merchant-backend.env",
        "# shared by serve and the CLI\n"
        "MERCHANT_BACKEND_STRIPE_API_BASE=http://127.0.0.1:12111\n"
        'export MERCHANT_BACKEND_PUBLIC_URL="https://shop.example"\n'
        "MERCHANT_BACKEND_WEBHOOK_TOLERANCE=120\n"
        "merchant_backend_log_level=debug\n",
    )
    monkeypatch.setenv("MERCHANT_BACKEND_WEBHOOK_TOLERANCE", "60")
    monkeypatch.setenv("MERCHANT_BACKEND_PUBLIC_URL", "")  # empty counts as unset
    settings, found = load()
    assert settings.stripe_api_base == "http://127.0.0.1:12111"
    assert settings.public_url == "https://shop.example"
    assert settings.webhook_tolerance == 60
    assert settings.log_level == "debug"
    shown = config_report.report(settings, found).as_json()["settings"]
    assert shown["MERCHANT_BACKEND_STRIPE_API_BASE"]["from"] == "config file"
    assert shown["MERCHANT_BACKEND_PUBLIC_URL"]["from"] == "config file"
    assert shown["MERCHANT_BACKEND_WEBHOOK_TOLERANCE"] == {"value": 60, "from": "environment"}
    assert shown["MERCHANT_BACKEND_WEBHOOK_MAX_BODY"]["from"] == "default"


def test_a_named_file_is_read_and_must_exist(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = write(here / "elsewhere.env", "MERCHANT_BACKEND_PUBLIC_URL=https://a.example\n")
    monkeypatch.setenv("MERCHANT_BACKEND_CONFIG", str(conf))
    settings, found = load()
    assert settings.public_url == "https://a.example"
    assert found.chosen_by == "MERCHANT_BACKEND_CONFIG" and found.path == conf

    monkeypatch.setenv("MERCHANT_BACKEND_CONFIG", str(here / "missing.env"))
    with pytest.raises(ConfigError, match=r"missing\.env named by MERCHANT_BACKEND_CONFIG"):
        load()


def test_an_empty_config_variable_reads_no_file(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(here / "merchant-backend.env", "MERCHANT_BACKEND_PUBLIC_URL=https://a.example\n")
    monkeypatch.setenv("MERCHANT_BACKEND_CONFIG", "")
    settings, found = load()
    assert settings.public_url == Settings().public_url
    assert found.path is None and "set empty" in found.describe()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("MERCHANT_BACKEND_PUBLIC_ULR=https://a.example", "mean MERCHANT_BACKEND_PUBLIC_URL"),
        ("PUBLIC_URL=https://a.example", "mean MERCHANT_BACKEND_PUBLIC_URL"),
        ("MERCHANT_BACKEND_SECRET_KEY=sk_test_x", "is not a setting"),
    ],
)
def test_a_name_that_is_no_setting_is_refused(here: Path, line: str, message: str) -> None:
    write(here / "merchant-backend.env", line + "\n")
    with pytest.raises(ConfigError, match=message):
        load()


def test_a_bad_value_names_the_variable_and_where_it_came_from(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(here / "merchant-backend.env", "MERCHANT_BACKEND_WEBHOOK_TOLERANCE=soon\n")
    with pytest.raises(ConfigError, match=r"MERCHANT_BACKEND_WEBHOOK_TOLERANCE \(from the config"):
        load()
    monkeypatch.setenv("MERCHANT_BACKEND_WEBHOOK_TOLERANCE", "-1")
    with pytest.raises(ConfigError, match=r"TOLERANCE \(from the environment\).*greater than"):
        load()


def test_a_worker_batch_too_large_for_one_statement_is_refused(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MERCHANT_BACKEND_WORKER_BATCH_SIZE", "5000")
    assert load()[0].worker_batch_size == 5000
    monkeypatch.setenv("MERCHANT_BACKEND_WORKER_BATCH_SIZE", "5001")
    with pytest.raises(ConfigError, match=r"WORKER_BATCH_SIZE \(from the environment\).*5000"):
        load()


def test_a_file_holding_a_secret_must_be_private(here: Path) -> None:
    conf = write(here / "merchant-backend.env", f"MERCHANT_BACKEND_ADMIN_TOKEN={ADMIN}\n", 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load()
    conf.chmod(0o600)
    settings, _ = load()
    assert settings.admin_token is not None and settings.admin_token.get_secret_value() == ADMIN
    # Without a secret in it, a readable file is fine.
    write(conf, "MERCHANT_BACKEND_PUBLIC_URL=https://a.example\n", 0o644)
    load()


def test_the_report_shows_no_secret(here: Path) -> None:
    old, new = generate_key(), generate_key()
    write(
        here / "merchant-backend.env",
        f"MERCHANT_BACKEND_ADMIN_TOKEN={ADMIN}\n"
        f"MERCHANT_BACKEND_MASTER_KEY={new},{old}\n"
        "MERCHANT_BACKEND_DATABASE_URL=postgresql://shop:hunter2-secret@db.example/shop\n"
        "MERCHANT_BACKEND_RATE_LIMIT_STORAGE=redis://:redis-pass-secret@cache.example:6379\n",
    )
    settings, found = load()
    text = json.dumps(config_report.report(settings, found).as_json())
    for secret in (ADMIN, ADMIN[:-4], new, old, "hunter2-secret", "redis-pass-secret"):
        assert secret not in text
    shown = json.loads(text)["settings"]
    assert shown["MERCHANT_BACKEND_ADMIN_TOKEN"]["value"] == "…WXYZ"
    assert shown["MERCHANT_BACKEND_MASTER_KEY"]["value"].startswith("2 keys (ids ")
    assert shown["MERCHANT_BACKEND_DATABASE_URL"]["value"] == (
        "postgresql://shop:***@db.example/shop"
    )
    assert "not used" in shown["MERCHANT_BACKEND_MASTER_KEY_FILE"]["note"]
    assert shown["MERCHANT_BACKEND_RATE_LIMIT_STORAGE"]["value"] == (
        "redis://:***@cache.example:6379"
    )


def test_the_report_says_where_the_files_are(here: Path) -> None:
    settings, found = load()
    report = config_report.report(settings, found).as_json()
    assert report["config_file"] == {
        "path": str(here / "merchant-backend.env"),
        "exists": False,
        "chosen_by": "default",
    }
    shown = report["settings"]
    assert shown["MERCHANT_BACKEND_DATABASE_URL"]["note"] == (
        f"the file {here / 'merchant-backend.db'}"
    )
    assert "does not exist yet" in shown["MERCHANT_BACKEND_MASTER_KEY_FILE"]["note"]
    assert shown["MERCHANT_BACKEND_ADMIN_TOKEN"] == {
        "value": None,
        "from": "default",
        "note": "the admin API and admin pages are off",
    }


def test_config_file_reads_values_in_any_case(here: Path) -> None:
    write(here / "merchant-backend.env", "merchant_backend_public_url=https://a.example\n")
    found = config_file()
    assert found.values == {"MERCHANT_BACKEND_PUBLIC_URL": "https://a.example"}


# ---- the command line reads it too -----------------------------------------------------------


def test_the_cli_reads_the_file_and_config_reports_it(
    settings: Settings, runtime: Runtime, tmp_path: Path
) -> None:
    from tests.foundation_helpers import cli_env, run_cli, run_cli_process

    conf = write(
        tmp_path / "shop.env",
        f"MERCHANT_BACKEND_PUBLIC_URL=https://shop.example\nMERCHANT_BACKEND_ADMIN_TOKEN={ADMIN}\n",
    )
    # The database and master key as the test's, from the environment; the rest from the file.
    env = cli_env(settings, MERCHANT_BACKEND_CONFIG=str(conf), MERCHANT_BACKEND_PUBLIC_URL=None)
    done = run_cli_process(["config"], env)
    assert done.returncode == 0, done.stderr
    assert ADMIN not in done.stdout
    shown = json.loads(done.stdout)
    assert shown["config_file"] == {
        "path": str(conf),
        "exists": True,
        "chosen_by": "MERCHANT_BACKEND_CONFIG",
    }
    assert shown["settings"]["MERCHANT_BACKEND_PUBLIC_URL"] == {
        "value": "https://shop.example",
        "from": "config file",
    }
    assert shown["settings"]["MERCHANT_BACKEND_DATABASE_URL"]["from"] == "environment"
    assert shown["settings"]["MERCHANT_BACKEND_ADMIN_TOKEN"]["value"] == "…WXYZ"

    # Any command sees the same: the webhook URL a data set shows is built from the file's.
    created = run_cli(["merchants", "create", "--name", "Shop"], env)
    assert created.exit_code == 0, created.output
    merchant = json.loads(created.stdout)["id"]
    stored = run_cli(
        [
            "stripe", "set", "--merchant", merchant, "--env", "stage",
            "--account-id", "acct_1StageAcct",
            "--publishable-key", "pk_test_TYooMQauvdEDq54NiTphI7jx",
            "--secret-key", "sk_test_" + "a" * 24,
        ],
        env,
    )  # fmt: skip
    assert stored.exit_code == 0, stored.output
    assert json.loads(stored.stdout)["webhook_url"] == (
        f"https://shop.example/webhooks/stripe/{merchant}/stage"
    )


def test_a_bad_config_file_is_bad_input(settings: Settings, tmp_path: Path) -> None:
    from tests.foundation_helpers import cli_env, run_cli

    conf = write(tmp_path / "shop.env", "MERCHANT_BACKEND_PUBLIC_ULR=https://shop.example\n")
    result = run_cli(["merchants", "list"], cli_env(settings, MERCHANT_BACKEND_CONFIG=str(conf)))
    assert result.exit_code == 2 and result.stdout == ""
    error = json.loads(result.stderr)["error"]
    assert error["code"] == "invalid_config"
    assert "did you mean MERCHANT_BACKEND_PUBLIC_URL" in error["message"]
