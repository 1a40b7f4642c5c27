"""Ingest: the bare endpoint, the docs-style handler and the real ``serve``, same wrk load.

All servers run on CPU 0 (started once, idle while another is measured) and wrk on CPU 1
(``serve --processes 2`` on PostgreSQL gets both CPUs: see ``start_real``).
Every request carries an event never sent before, signed a moment before its run (Stripe's
tolerance is 300 s), so the real endpoint verifies, checks and durably stores each one. The
targets are measured in turn, several rounds, so a noisy neighbour hits all of them alike; each
round's ratio is real / bare of that round. Afterwards the inbox is counted to show that every
2xx is really there. For ``serve`` with its worker, each run also waits until the worker has
applied the run's events and reads, from the inbox rows, how fast they were applied and each
one's lag from ``received_at`` to ``applied_at``.
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

from sqlalchemy import func, select, text

from bench import events, wrk
from bench.procs import Children, free_port, python, wait_http
from merchant_backend.crypto import generate_key
from merchant_backend.store.db import create_db_engine
from merchant_backend.store.schema import events as events_table

SERVER_CPU = 0
LOAD_CPU = 1
ACCOUNT = "acct_1BenchAccount"
SIGNING_SECRET = "whsec_" + secrets.token_hex(24)


@dataclass(frozen=True)
class Applied:
    """How the worker of ``serve`` kept up with one run: from the inbox rows of the run."""

    events: int
    seconds: float  # from the first event's arrival to the last one applied
    lag_p50_ms: float
    lag_p99_ms: float
    lag_max_ms: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


@dataclass
class Target:
    name: str
    port: int
    path: str
    proc: subprocess.Popen[Any]
    database_url: str | None = None
    applies: bool = False  # serve with its worker: wait for and measure the applying
    runs: list[wrk.LoadResult] = field(default_factory=list)
    applied: list[Applied] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)
    sent: int = 0
    answered: int = 0

    def median(self, attr: str) -> float:
        return float(median(getattr(r, attr) for r in self.runs))

    def median_applied(self, attr: str) -> float:
        return float(median(getattr(a, attr) for a in self.applied))


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


def start_docs_handler(children: Children, workdir: Path) -> Target:
    port = free_port()
    env = {
        **os.environ,
        "STRIPE_WEBHOOK_SECRET": SIGNING_SECRET,
        "DOCS_HANDLER_DB": str(workdir / "docs-handler.db"),
    }
    proc = children.start(
        "docs-handler",
        [python(), "-m", "bench.docs_handler", "--port", str(port)],
        env=env,
        cpus={SERVER_CPU},
    )
    wait_http(f"http://127.0.0.1:{port}/docs", proc)
    return Target("docs-style handler, SQLite", port, "/webhook", proc)


def start_real(
    children: Children,
    workdir: Path,
    label: str,
    database_url: str,
    *,
    worker: bool = False,
    processes: int = 0,
) -> Target:
    """``serve`` on a fresh database: ``--no-worker`` unless ``worker``; ``--processes N`` if
    ``processes`` (those get every CPU: wrk's too, which is the point to make)."""
    env, merchant_id = prepare_service(workdir, database_url)
    port = free_port()
    exe = str(Path(python()).with_name("merchant-backend"))
    argv = [exe, "serve", "--port", str(port)]
    if not worker:
        argv.append("--no-worker")
    if processes:
        argv += ["--processes", str(processes)]
    name = "serve" if worker else "serve --no-worker"
    if processes:
        name += f" --processes {processes}"
    proc = children.start(
        f"serve-{label}-{len(children.procs)}",
        argv,
        env=env,
        cpus=None if processes > 1 else {SERVER_CPU},
    )
    wait_http(f"http://127.0.0.1:{port}/healthz", proc)
    return Target(
        f"{name}, {label}",
        port,
        f"/webhooks/stripe/{merchant_id}/stage",
        proc,
        database_url,
        applies=worker,
    )


def load(
    children: Children,
    files: LoadFiles,
    target: Target,
    n: int,
    connections: int,
    *,
    record: bool = True,
    delay_ms: int = 0,
) -> tuple[wrk.LoadResult, Applied | None]:
    name = f"wrk-{target.port}-{len(target.runs)}-{'run' if record else 'warmup'}"
    requests_file = files.make(name, n)
    cpu_before = cpu_seconds(target.proc.pid)
    started = time.time()
    result = wrk.run(
        children,
        name,
        url_base=f"http://127.0.0.1:{target.port}",
        path=target.path,
        requests_file=requests_file,
        connections=connections,
        cpu=LOAD_CPU,
        delay_ms=delay_ms,
    )
    applied = None
    if target.applies and target.database_url is not None:
        applied = wait_applied(target.database_url, since=started)
    cpu = cpu_seconds(target.proc.pid) - cpu_before
    target.sent += n
    target.answered += result.requests - result.non_2xx
    if record:
        target.runs.append(result)
        target.cpu_us.append(cpu / max(result.requests, 1) * 1e6)
        if applied is not None:
            target.applied.append(applied)
    return result, applied


def _percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


def wait_applied(database_url: str, *, since: float, timeout: float = 600.0) -> Applied:
    """Wait until the worker has applied every event received since ``since``; their figures."""
    engine = create_db_engine(database_url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            with engine.connect() as conn:
                waiting = conn.execute(
                    text(
                        "SELECT count(*) FROM events WHERE received_at >= :t "
                        "AND state NOT IN ('applied', 'ignored')"
                    ),
                    {"t": since},
                ).scalar_one()
            if not waiting:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{waiting} events still not applied after {timeout} s")
            time.sleep(0.05)
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT received_at, applied_at FROM events "
                    "WHERE received_at >= :t AND state = 'applied'"
                ),
                {"t": since},
            ).all()
    finally:
        engine.dispose()
    lags = sorted((r[1] - r[0]) * 1000 for r in rows)
    first = min((r[0] for r in rows), default=0.0)
    last = max((r[1] for r in rows), default=0.0)
    return Applied(
        events=len(rows),
        seconds=last - first,
        lag_p50_ms=_percentile(lags, 50),
        lag_p99_ms=_percentile(lags, 99),
        lag_max_ms=lags[-1] if lags else 0.0,
    )


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) of a process so far, with its children's
    (``serve --processes N`` runs its servers as children)."""
    total = 0.0
    for p in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            kids = (task / "children").read_text().split()
            for k in kids:
                out.append(int(k))
                out += _children(int(k))
    except OSError:
        pass
    return out


def stored_events(database_url: str) -> int:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(events_table)).scalar_one())
    finally:
        engine.dispose()
