"""Processing: how fast ``Worker`` applies events already in the inbox, with 1 and 2 processes.

Each case gets a fresh database with N pending events (mixed lifecycles over many objects, in
shuffled order as Stripe may deliver them). Worker processes connect first, then start
together; the figure is N over the time from the first start to the last finish, and the
inbox is checked afterwards: every event applied, none failed.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
import zlib
from dataclasses import dataclass

import orjson
from sqlalchemy import func, select

from bench import events
from bench.procs import Children, python
from merchant_backend import clock
from merchant_backend.crypto import generate_key
from merchant_backend.runtime import Runtime
from merchant_backend.settings import Settings
from merchant_backend.store import db, inbox
from merchant_backend.store import merchants as merchant_store
from merchant_backend.store.migrate import upgrade
from merchant_backend.store.schema import events as events_table
from merchant_backend.stripe.webhook_event import parse_event

ACCOUNT = "acct_1BenchAccount"


@dataclass(frozen=True)
class ProcessingFigures:
    label: str
    workers: int
    events: int
    seconds: float
    applied: int

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def fill_inbox(database_url: str, n: int, seed: int, merchants: int = 1) -> None:
    """N pending events; with ``merchants`` > 1 each object's events belong to one of them
    (as each merchant has its own Stripe objects), so a batch spans many merchants."""
    settings = Settings(database_url=database_url, master_key=generate_key())
    rt = Runtime(settings)
    try:
        upgrade(rt.engine)
        with db.write(rt.engine) as conn:
            shops = [merchant_store.create(conn, f"Bench Shop {i}")[0].id for i in range(merchants)]
        builder = events.Builder(f"p{seed}", account=ACCOUNT)
        evts = events.take(builder, ACCOUNT, n, int(time.time()) - 86400)
        random.Random(seed).shuffle(evts)
        items = []
        for evt in evts:
            raw = orjson.dumps(evt)
            parsed = parse_event(raw)
            shop = shops[zlib.crc32((parsed.object_id or "").encode()) % merchants]
            items.append(inbox.NewEvent.of(parsed, shop, "stage", raw, "webhook"))
        for i in range(0, len(items), 1000):
            with db.write(rt.engine) as conn:
                inbox.insert_new(conn, items[i : i + 1000], clock.now())
    finally:
        rt.close()


def _states(database_url: str) -> dict[str, int]:
    rt = Runtime(Settings(database_url=database_url, master_key=generate_key()))
    try:
        with rt.engine.connect() as conn:
            rows = conn.execute(
                select(events_table.c.state, func.count()).group_by(events_table.c.state)
            )
            return {r[0]: int(r[1]) for r in rows}
    finally:
        rt.close()


def run_case(
    children: Children,
    label: str,
    database_url: str,
    *,
    n: int,
    workers: int,
    seed: int,
    merchants: int = 1,
) -> ProcessingFigures:
    fill_inbox(database_url, n, seed, merchants)
    env = {
        **os.environ,
        "MERCHANT_BACKEND_DATABASE_URL": database_url,
        "MERCHANT_BACKEND_LOG_LEVEL": "WARNING",
    }
    procs = [
        children.start(
            f"worker-{label}-{workers}-{i}",
            [python(), "-m", "bench.worker_proc"],
            env=env,
            cpus={i % 2},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for i in range(workers)
    ]
    for proc in procs:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"worker did not start: {children.log_tail(f'worker-{label}')}")
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
    reports = []
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        children.procs.remove(proc)
        reports.append(json.loads(out.decode().strip().splitlines()[-1]))
    seconds = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    states = _states(database_url)
    if states.get("failed") or states.get("dead") or states.get("pending"):
        raise RuntimeError(f"processing left events behind: {states}")
    return ProcessingFigures(label, workers, n, seconds, states.get("applied", 0))
