"""The command line for people and for scripts: readable help (no ``<bool>``/``<str>`` type
labels), errors as one plain sentence at a terminal and as the error JSON for scripts or with
``--json``, the same exit codes either way. The terminal is a real pseudo-terminal: the
installed program is run with its stderr on one."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
from typing import Any

import pytest

from merchant_backend.cli import _take_json_flag, helptext
from merchant_backend.cli import output as cli_output
from merchant_backend.runtime import Runtime
from merchant_backend.settings import Settings
from tests.foundation_helpers import CLI_BIN, cli_env, run_cli, subprocess_env
from tests.test_cli import set_args


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_at_terminal(args: list[str], env: dict[str, str | None]) -> tuple[int, str, str]:
    """The installed program with stderr on a pseudo-terminal (stdout still a pipe)."""
    leader, follower = pty.openpty()
    try:
        done = subprocess.run(
            [str(CLI_BIN), *args],
            env=subprocess_env({**env, "COLUMNS": "200"}),
            stdout=subprocess.PIPE,
            stderr=follower,
            stdin=subprocess.DEVNULL,
            timeout=60,
            check=False,
        )
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal has no more to give
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        if follower >= 0:
            os.close(follower)
        os.close(leader)
    terminal = b"".join(chunks).decode().replace("\r\n", "\n")
    return done.returncode, done.stdout.decode(), terminal


# ---- rendering, without a process ------------------------------------------------------------


def test_one_plain_sentence_naming_the_option() -> None:
    error = cli_output.CliError("invalid_request", "account id is missing", "account_id")
    assert cli_output.plain(error) == "error: account id is missing. (--account-id)\n"
    error = cli_output.CliError("not_found", "no merchant mer_1: see 'merchants list'")
    assert cli_output.plain(error) == "error: no merchant mer_1: see 'merchants list'.\n"


def test_several_fields_each_on_a_line() -> None:
    errors = [
        {"field": "account_id", "message": "account id is missing"},
        {"field": "webhook_signing_secret", "message": "must start with whsec_"},
    ]
    error = cli_output.CliError("invalid_request", "account id is missing", "account_id", errors)
    assert cli_output.plain(error) == (
        "error: 2 problems, nothing was changed:\n"
        "  --account-id: account id is missing.\n"
        "  --signing-secret: must start with whsec_.\n"
    )


def test_json_for_scripts_and_when_asked() -> None:
    error = cli_output.CliError("invalid_request", "bad", "--env")
    for stream, flag in ((io.StringIO(), False), (Terminal(), True)):
        cli_output.write(error, flag, stream)
        assert json.loads(stream.getvalue()) == {
            "error": {"code": "invalid_request", "message": "bad", "field": "--env"}
        }
    terminal = Terminal()
    cli_output.write(error, False, terminal)
    assert terminal.getvalue() == "error: bad. (--env)\n"


@pytest.mark.parametrize(
    ("args", "expected", "found"),
    [
        (["merchants", "list"], ["merchants", "list"], False),
        (["merchants", "list", "--json"], ["--json", "merchants", "list"], True),
        (["--json", "migrate"], ["--json", "migrate"], True),
        (["x", "--", "--json"], ["x", "--", "--json"], False),
    ],
)
def test_json_flag_anywhere(args: list[str], expected: list[str], found: bool) -> None:
    assert _take_json_flag(args) == (expected, found)


# ---- help --------------------------------------------------------------------------------


def _all_commands() -> list[list[str]]:
    import typer

    from merchant_backend.cli import app

    found: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        found.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


@pytest.mark.parametrize("command", _all_commands(), ids=lambda c: " ".join(c) or "root")
def test_help_has_no_type_labels(settings: Settings, command: list[str]) -> None:
    result = run_cli([*command, "--help"], {**cli_env(settings), "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for label in ("<bool>", "<str>", "<int>", "<float>", "<path>"):
        assert label not in result.stdout
    if command == ["stripe", "set"]:
        assert "--merchant" in result.stdout and "ID" in result.stdout
        assert "acct_…" in result.stdout


def test_help_paragraphs_are_reflowed_but_lists_keep_their_lines() -> None:
    assert helptext.reflow("One line\n    broken here.\n\n    Second.") == (
        "One line broken here.\n\nSecond."
    )
    listed = "Steps:\n1. first\n2. second"
    assert helptext.reflow(listed) == listed


# ---- the real program at a terminal --------------------------------------------------------


def test_errors_at_a_terminal_are_a_sentence(settings: Settings, runtime: Runtime) -> None:
    env = cli_env(settings)
    code, out, err = run_at_terminal(["stripe", "set", "--merchant", "mer_x"], env)
    assert (code, out) == (2, "")
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "--help" in err and "{" not in err

    code, out, err = run_at_terminal(set_args("mer_nobody", secret_key="sk_test_" + "a" * 24), env)
    assert (code, out) == (2, "")
    assert err == "error: no merchant mer_nobody: see 'merchant-backend merchants list'.\n"

    code, out, err = run_at_terminal(["merchants", "create", "--name", " "], env)
    assert (code, out, err) == (2, "", "error: name must be 1 to 200 characters. (--name)\n")


def test_json_at_a_terminal_when_asked(settings: Settings, runtime: Runtime) -> None:
    env = cli_env(settings)
    for args in (
        ["--json", "merchants", "create", "--name", " "],
        ["merchants", "create", "--name", " ", "--json"],
    ):
        code, out, err = run_at_terminal(args, env)
        assert (code, out) == (2, "")
        error: dict[str, Any] = json.loads(err)["error"]
        assert error == {
            "code": "invalid_request",
            "message": "name must be 1 to 200 characters",
            "field": "name",
        }


def test_other_failures_exit_1_at_a_terminal(settings: Settings, tmp_path: Any) -> None:
    nowhere = cli_env(
        settings, MERCHANT_BACKEND_DATABASE_URL=f"sqlite:///{tmp_path}/no/such/dir.db"
    )
    code, out, err = run_at_terminal(["merchants", "list"], nowhere)
    assert (code, out) == (1, "")
    assert err.startswith("error: ") and err.count("\n") == 1, err


def test_logs_are_text_for_a_person_and_json_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    import structlog

    from merchant_backend import logs

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    config = structlog.get_config()
    try:
        for stream, as_json in ((Terminal(), False), (io.StringIO(), True)):
            monkeypatch.setattr("sys.stderr", stream)
            logs.setup("INFO", None)
            logs.get("test").info("hello", merchant_id="mer_1")
            line = stream.getvalue().strip()
            if as_json:
                assert json.loads(line)["event"] == "hello"
            else:
                assert "hello" in line and "merchant_id" in line and not line.startswith("{")
    finally:
        root.handlers, root.level = handlers, level
        structlog.configure(**config)
