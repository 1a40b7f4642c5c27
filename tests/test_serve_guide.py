"""What ``serve`` tells a person, run as ``make serve`` runs it in a fresh folder: once the
service answers, the address to open, how to create the first merchant, that the admin API is
off, and where the master key is and that it must be backed up with the database. At a
terminal (a real pseudo-terminal) as text; otherwise as one log line. Also ``cli_name``."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from merchant_backend.serve_guide import browser_url, cli_name
from tests.foundation_helpers import CLI_BIN, free_port, subprocess_env

DEADLINE = 60.0  # a loaded 2-core machine; it takes about 2 s


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_at_a_terminal_serve_says_what_to_do_next(tmp_path: Path) -> None:
    port = free_port()
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [str(CLI_BIN), "serve", "--port", str(port)],
        cwd=tmp_path,
        env=subprocess_env({"MERCHANT_BACKEND_CONFIG": None}),
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    seen = b""
    try:
        begin = time.monotonic()
        while b"Stop with Ctrl-C" not in seen:
            assert time.monotonic() - begin < DEADLINE, seen.decode(errors="replace")
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(leader, 65536)
                except OSError:
                    break
    finally:
        _stop(process)
        os.close(leader)
    text = seen.decode(errors="replace").replace("\r\n", "\n")
    assert f"merchant-backend is up: open http://127.0.0.1:{port}" in text
    assert f"{tmp_path / 'merchant-backend.key'} (created just now)" in text
    assert "back it up together" in text and "with the database" in text
    assert "merchants create --name" in text
    assert "The admin API is off: set MERCHANT_BACKEND_ADMIN_TOKEN" in text
    assert f"{tmp_path / 'merchant-backend.db'}" in text
    # Logs are text for a person too, and the readiness probe is not logged.
    assert '{"event"' not in text and "HTTP Request" not in text


def test_without_a_terminal_the_same_facts_are_one_log_line(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [str(CLI_BIN), "serve", "--port", str(port)],
        cwd=tmp_path,
        env=subprocess_env({"MERCHANT_BACKEND_ADMIN_TOKEN": "admin-" + "a" * 32}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    found = None
    try:
        begin = time.monotonic()
        while found is None and time.monotonic() - begin < DEADLINE:
            line = process.stderr.readline()
            if not line:
                break
            entry = json.loads(line)
            if entry.get("event") == "ready":
                found = entry
    finally:
        _stop(process)
    assert found is not None
    assert found["url"] == f"http://127.0.0.1:{port}"
    assert found["master_key_file"] == str(tmp_path / "merchant-backend.key")
    assert found["master_key_created"] is True
    assert found["admin_api"] == "on" and found["merchants"] == 0


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000"),
        ("0.0.0.0", "http://127.0.0.1:8000"),  # noqa: S104
        ("::1", "http://[::1]:8000"),
    ],
)
def test_browser_url(host: str, url: str) -> None:
    assert browser_url(host, 8000) == url


def test_cli_name(tmp_path: Path) -> None:
    program = tmp_path / ".venv" / "bin" / "merchant-backend"
    assert cli_name(str(program), cwd=tmp_path) == ".venv/bin/merchant-backend"
    assert cli_name(str(program), cwd=tmp_path / "elsewhere") == str(program)
    assert cli_name("merchant-backend") == "merchant-backend"
