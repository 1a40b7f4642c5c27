"""``serve``'s word to a person once the service answers (the text is startup_guide.py's).

A thread polls the service's own ``/healthz`` until it answers 200, so the guide is printed
only when the address really works, whatever uvicorn does to start (one process or several).
At a terminal the guide is printed as text; otherwise its facts become one log line.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

import httpx

from merchant_backend import logs
from merchant_backend.config_report import database_summary
from merchant_backend.runtime import Runtime
from merchant_backend.services.merchants import list_merchants
from merchant_backend.settings import ConfigFile
from merchant_backend.startup_guide import Facts, text

READY_TIMEOUT = 120.0
POLL = 0.1


def browser_url(host: str, port: int) -> str:
    """The address a browser on this machine opens for ``host``."""
    if host in ("0.0.0.0", "", "::"):  # noqa: S104  (naming it, not binding it)
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def cli_name(argv0: str | None = None, cwd: Path | None = None) -> str:
    """How the person calls the CLI from here: its name when on PATH, else its path."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    program = Path(argv0)
    if "/" not in argv0:
        return argv0 or "merchant-backend"
    on_path = shutil.which(program.name)
    if on_path and Path(on_path).resolve() == program.resolve():
        return program.name
    try:
        relative = os.path.relpath(program.absolute(), cwd or Path.cwd())
    except ValueError:
        relative = ".."
    return str(program.absolute()) if relative.startswith("..") else relative


def settings_from(found: ConfigFile) -> str:
    if found.path is None:
        return found.describe()
    if found.exists:
        return f"{found.path} and the environment (the environment wins)"
    return f"the environment and defaults (no config file at {found.path})"


def facts(
    rt: Runtime, found: ConfigFile, url: str, *, key_existed: bool, cli: str | None = None
) -> Facts:
    settings = rt.settings
    database, sqlite_file = database_summary(settings.database_url)
    merchants = len(list_merchants(rt))
    key_file = (
        None if settings.master_key is not None else str(Path(settings.master_key_file).absolute())
    )
    return Facts(
        url=url,
        public_url=settings.public_url,
        settings_from=settings_from(found),
        database=sqlite_file.removeprefix("the file ") if sqlite_file else database,
        key_file=key_file,
        key_created=key_file is not None and not key_existed,
        admin_token_set=settings.admin_token is not None,
        merchants=merchants,
        cli=cli or cli_name(),
    )


def _ready(url: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(POLL)
    return False


def announce_when_ready(
    url: str, guide: Facts, stream: TextIO | None = None, timeout: float = READY_TIMEOUT
) -> threading.Thread:
    """Print the guide (or log its facts) once ``url`` answers; gives up after ``timeout``."""

    def run() -> None:
        if not _ready(url, time.monotonic() + timeout):
            return
        out = sys.stderr if stream is None else stream
        try:
            to_a_person = out.isatty()
        except (AttributeError, ValueError):
            to_a_person = False
        if to_a_person:
            out.write("\n" + text(guide) + "\n")
            out.flush()
        else:
            logs.get("merchant_backend.serve").info("ready", **guide.as_log())

    thread = threading.Thread(target=run, name="serve-guide", daemon=True)
    thread.start()
    return thread
