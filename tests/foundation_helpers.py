"""Helpers for the foundation tests: the CLI in-process, database snapshots, a free port.

The CLI configures logging for its process (``logs.setup``); run in-process it would leave
structlog and the root logger writing into the runner's closed streams, so ``run_cli``
puts the logging set-up back afterwards.
"""

from __future__ import annotations

import base64
import logging
import os
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Engine, select
from typer.testing import CliRunner, Result

from merchant_backend.cli import app as cli_app
from merchant_backend.settings import Settings
from merchant_backend.store.schema import metadata

REPO = Path(__file__).resolve().parents[1]
CLI_BIN = REPO / ".venv" / "bin" / "merchant-backend"

VALID_STAGE = {
    "account_id": "acct_1StageAcct",
    "publishable_key": "pk_test_TYooMQauvdEDq54NiTphI7jx",
}
VALID_LIVE = {
    "account_id": "acct_1LiveAcct",
    "publishable_key": "pk_live_TYooMQauvdEDq54NiTphI7jx",
}


def cli_env(settings: Settings, **extra: str | None) -> dict[str, str | None]:
    """The environment a CLI run needs to reach the test database with the test key."""
    env: dict[str, str | None] = {
        "MERCHANT_BACKEND_DATABASE_URL": settings.database_url,
        "MERCHANT_BACKEND_MASTER_KEY": (
            settings.master_key.get_secret_value() if settings.master_key else None
        ),
        "MERCHANT_BACKEND_MASTER_KEY_FILE": settings.master_key_file,
        "MERCHANT_BACKEND_PUBLIC_URL": settings.public_url,
        "MERCHANT_BACKEND_SECRET_KEY": None,
        "MERCHANT_BACKEND_SIGNING_SECRET": None,
        # No config file: a ./merchant-backend.env of the developer's must not leak in.
        "MERCHANT_BACKEND_CONFIG": "",
    }
    env.update(extra)
    return env


def run_cli(args: Sequence[str], env: Mapping[str, str | None], input: str | None = None) -> Result:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    config = structlog.get_config()
    try:
        return CliRunner().invoke(cli_app, list(args), env=dict(env), input=input)
    finally:
        root.handlers, root.level = handlers, level
        structlog.configure(**config)


def subprocess_env(env: Mapping[str, str | None]) -> dict[str, str]:
    """The real environment without MERCHANT_BACKEND_* leftovers, plus ``env``."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("MERCHANT_BACKEND_")}
    out.update({k: v for k, v in env.items() if v is not None})
    return out


def run_cli_process(
    args: Sequence[str],
    env: Mapping[str, str | None],
    input: str | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI_BIN), *args],
        env=subprocess_env(env),
        input=input,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order: to compare a whole database."""
    snapshot: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            found = conn.execute(select(table)).all()
            snapshot[table.name] = sorted((tuple(r) for r in found), key=repr)
    return snapshot


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# Finding a secret in bytes, in any encoding.
KINDS = ("sk_test_", "sk_live_", "rk_test_", "rk_live_", "whsec_", "mbt_")


def _b64_cores(raw: bytes) -> list[bytes]:
    """Base64 text of ``raw`` at each of the three alignments it can have inside a longer
    value, without the edge characters that depend on the neighbouring bytes."""
    cores: list[bytes] = []
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * shift + raw)
            cores.append(encoded[4 if shift else 0 : -4])
    return cores


def encodings(secret: str) -> list[bytes]:
    """Needles for a secret and for its random part alone (the part after sk_test_ …)."""
    needles: list[bytes] = []
    prefix = next((p for p in KINDS if secret.startswith(p)), "")
    body = secret[len(prefix) :]
    assert len(body) >= 16, "too short to search for without false alarms"
    for value in (secret, body):
        raw = value.encode()
        needles += [
            raw,
            value.encode("utf-16-le"),
            value.encode("utf-16-be"),
            raw.hex().encode(),
            raw.hex().upper().encode(),
            *_b64_cores(raw),
        ]
    return needles


def leaks(blob: bytes, values: list[str]) -> list[str]:
    return [v for v in values if any(n in blob for n in encodings(v))]
