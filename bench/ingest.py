"""Ingest: the bare endpoint and the real ``serve --no-worker``, under the same wrk load.

All servers run on CPU 0 (started once, idle while another is measured) and wrk on CPU 1.
Every request carries an event never sent before, signed a moment before its run (Stripe's
tolerance is 300 s), so the real endpoint verifies, checks and durably stores each one. The
targets are measured in turn, several rounds, so a noisy neighbour hits all of them alike; each
round's ratio is real / bare of that round. Afterwards the inbox is counted to show that every
2xx is really there.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

from sqlalchemy import func, select

from bench import events, wrk
from bench.procs import Children, free_port, python, wait_http
from merchant_backend.crypto import generate_key
from merchant_backend.store.db import create_db_engine
from merchant_backend.store.schema import events as events_table

SERVER_CPU = 0
LOAD_CPU = 1
ACCOUNT = "acct_1BenchAccount"
SIGNING_SECRET = "whsec_" + secrets.token_hex(24)


@dataclass
class Target:
    name: str
    port: int
    path: str
    proc: subprocess.Popen[Any]
    database_url: str | None = None
    runs: list[wrk.LoadResult] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    sent: int = 0
    answered: int = 0

    def median(self, attr: str) -> float:
        return float(median(getattr(r, attr) for r in self.runs))


def _cli(env: dict[str, str], *args: str) -> dict[str, object]:
    exe = str(Path(python()).with_name("merchant-backend"))
    out = subprocess.run([exe, *args], env=env, check=True, capture_output=True, timeout=120)
    parsed: dict[str, object] = json.loads(out.stdout)
    return parsed


def prepare_service(workdir: Path, database_url: str) -> tuple[dict[str, str], str]:
    """Migrate, create a merchant with a stage data set; returns the env and merchant id."""
    env = {
        **os.environ,
        "MERCHANT_BACKEND_DATABASE_URL": database_url,
        "MERCHANT_BACKEND_MASTER_KEY": generate_key(),
        "MERCHANT_BACKEND_MASTER_KEY_FILE": str(workdir / "unused.key"),
        "MERCHANT_BACKEND_LOG_LEVEL": "WARNING",
    }
    _cli(env, "migrate")
    merchant = _cli(env, "merchants", "create", "--name", "Bench Shop")
    merchant_id = str(merchant["id"])
    _cli(
        {
            **env,
            "MERCHANT_BACKEND_SECRET_KEY": "sk_test_" + secrets.token_hex(12),
            "MERCHANT_BACKEND_SIGNING_SECRET": SIGNING_SECRET,
        },
        "stripe",
        "set",
        "--merchant",
        merchant_id,
        "--env",
        "stage",
        "--account-id",
        ACCOUNT,
        "--publishable-key",
        "pk_test_" + secrets.token_hex(12),
    )
    return env, merchant_id


class LoadFiles:
    """Distinct signed events in wrk's request files; signed when asked, just before use."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.builder = events.Builder(secrets.token_hex(3), account=ACCOUNT)
        self.start = int(time.time()) - 86400

    def make(self, name: str, n: int) -> Path:
        evts = events.take(self.builder, ACCOUNT, n, self.start)
        self.start += n
        path = self.workdir / f"{name}.requests"
        wrk.write_requests(path, events.signed_bodies(evts, SIGNING_SECRET, int(time.time())))
        return path


def start_bare(children: Children) -> Target:
    port = free_port()
    proc = children.start(
        "bare",
        [python(), "-m", "bench.bare", "--port", str(port)],
        env=dict(os.environ),
        cpus={SERVER_CPU},
    )
    wait_http(f"http://127.0.0.1:{port}/", proc)
    return Target("bare ASGI endpoint", port, "/webhooks/stripe/mer_x/stage", proc)


def start_real(children: Children, workdir: Path, label: str, database_url: str) -> Target:
    env, merchant_id = prepare_service(workdir, database_url)
    port = free_port()
    exe = str(Path(python()).with_name("merchant-backend"))
    proc = children.start(
        f"serve-{label}",
        [exe, "serve", "--no-worker", "--port", str(port)],
        env=env,
        cpus={SERVER_CPU},
    )
    wait_http(f"http://127.0.0.1:{port}/healthz", proc)
    return Target(
        f"serve --no-worker, {label}",
        port,
        f"/webhooks/stripe/{merchant_id}/stage",
        proc,
        database_url,
    )


def load(
    children: Children,
    files: LoadFiles,
    target: Target,
    n: int,
    connections: int,
    *,
    record: bool = True,
) -> wrk.LoadResult:
    name = f"wrk-{target.port}-{len(target.runs)}-{'run' if record else 'warmup'}"
    requests_file = files.make(name, n)
    cpu_before = cpu_seconds(target.proc.pid)
    result = wrk.run(
        children,
        name,
        url_base=f"http://127.0.0.1:{target.port}",
        path=target.path,
        requests_file=requests_file,
        connections=connections,
        cpu=LOAD_CPU,
    )
    cpu = cpu_seconds(target.proc.pid) - cpu_before
    target.sent += n
    target.answered += result.requests - result.non_2xx
    if record:
        target.runs.append(result)
        target.cpu_us.append(cpu / max(result.requests, 1) * 1e6)
    return result


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stored_events(database_url: str) -> int:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(events_table)).scalar_one())
    finally:
        engine.dispose()
