"""Retention: the database size per 100,000 events before and after pruning (issue 9).

A fresh database gets N events of the benchmark's mixed lifecycles (bodies as Stripe sends
them), the worker applies them all (so projections and per-object history are their real
size), then every event is made 100 days old and ``store.retention.prune`` removes the bodies.
Sizes are scaled to 100,000 events:

- SQLite: the pages in use (page count less the free list) before and after, the file size
  (which stays until ``VACUUM``: the free pages are reused by new events), and the file after
  ``VACUUM``;
- PostgreSQL: ``pg_database_size`` after a plain ``VACUUM`` before and after (space freed
  inside the files is reused, not returned), and after ``VACUUM FULL events``; plus the
  ``events`` table with its TOAST and indexes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import orjson
from sqlalchemy import Engine, text, update

from bench import events
from merchant_backend import clock
from merchant_backend.crypto import generate_key
from merchant_backend.runtime import Runtime
from merchant_backend.settings import Settings
from merchant_backend.store import db, inbox, retention
from merchant_backend.store import merchants as merchant_store
from merchant_backend.store.migrate import upgrade
from merchant_backend.store.schema import events as events_table
from merchant_backend.stripe.webhook_event import parse_event
from merchant_backend.sync.worker import Worker

ACCOUNT = "acct_1BenchAccount"
PER = 100_000
MB = 1024 * 1024


@dataclass(frozen=True)
class Sizes:
    """Bytes: in use (what new data can not reuse), on disk, and on disk once compacted."""

    used: int
    on_disk: int


@dataclass(frozen=True)
class RetentionFigures:
    label: str
    events: int
    before: Sizes
    after: Sizes
    compacted: int
    events_table_before: int
    events_table_after: int
    pruned: int
    prune_seconds: float
    body_bytes: int
    # The next run, with nothing left to prune: what it still walks (batches) and its time.
    again_batches: int
    again_seconds: float

    def per(self, value: int) -> float:
        return value * PER / self.events / MB


def fill(rt: Runtime, n: int) -> None:
    with db.write(rt.engine) as conn:
        merchant, _token = merchant_store.create(conn, "Retention Shop")
    builder = events.Builder("r", account=ACCOUNT)
    evts = events.take(builder, ACCOUNT, n, int(time.time()) - 200 * 86400)
    for i in range(0, n, 2000):
        items = []
        for evt in evts[i : i + 2000]:
            raw = orjson.dumps(evt)
            parsed = parse_event(raw)
            items.append(inbox.NewEvent.of(parsed, merchant.id, "stage", raw, "webhook"))
        with db.write(rt.engine) as conn:
            inbox.insert_new(conn, items, clock.now())
    Worker(rt.engine, rt.settings.model_copy(update={"worker_batch_size": 1000})).drain()
    old = clock.now() - 100 * 86400
    with db.write(rt.engine) as conn:
        conn.execute(update(events_table).values(received_at=old, next_attempt_at=old))


def _sqlite(engine: Engine, sql: str) -> int:
    """One statement outside any transaction (checkpoint and VACUUM refuse to run in one)."""
    raw = engine.raw_connection()
    try:
        row = raw.cursor().execute(sql).fetchone()
        return int(row[0]) if row and row[0] is not None else 0
    finally:
        raw.close()


def _sqlite_sizes(engine: Engine, path: Path) -> Sizes:
    _sqlite(engine, "PRAGMA wal_checkpoint(TRUNCATE)")
    page = _sqlite(engine, "PRAGMA page_size")
    pages = _sqlite(engine, "PRAGMA page_count")
    free = _sqlite(engine, "PRAGMA freelist_count")
    return Sizes(used=(pages - free) * page, on_disk=path.stat().st_size)


def _sqlite_table(engine: Engine) -> int:
    """The events table and its indexes (dbstat, when SQLite was built with it; else 0)."""
    try:
        return _sqlite(
            engine,
            "SELECT coalesce(sum(pgsize - unused), 0) FROM dbstat "
            "WHERE name = 'events' OR name LIKE 'ix_events_%' "
            "OR name LIKE 'sqlite_autoindex_events_%'",
        )
    except Exception:
        return 0


def _pg_vacuum(engine: Engine, full: bool = False) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM FULL events" if full else "VACUUM"))


def _pg_free(engine: Engine) -> int:
    """Reusable bytes inside the events table and its TOAST (pgstattuple; 0 without it)."""
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS pgstattuple"))
            toast = conn.execute(
                text("SELECT reltoastrelid::regclass::text FROM pg_class WHERE relname = 'events'")
            ).scalar_one()
            free = 0
            for rel in ("events", toast):
                row = conn.execute(
                    text("SELECT free_space + dead_tuple_len FROM pgstattuple(:r)"), {"r": rel}
                ).one()
                free += int(row[0])
            return free
    except Exception:
        return 0


def _pg_sizes(engine: Engine) -> tuple[Sizes, int]:
    _pg_vacuum(engine)
    with engine.connect() as conn:
        total = int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
        table = int(conn.execute(text("SELECT pg_total_relation_size('events')")).scalar_one())
    return Sizes(used=total - _pg_free(engine), on_disk=total), table


def run_case(label: str, database_url: str, n: int) -> RetentionFigures:
    settings = Settings(database_url=database_url, master_key=generate_key())
    rt = Runtime(settings)
    try:
        upgrade(rt.engine)
        fill(rt, n)
        with db.read(rt.engine) as conn:
            _count, body_bytes = retention.count_prunable(conn, retention.cutoff(90, clock.now()))
        sqlite_path = Path(rt.engine.url.database or "") if label == "SQLite" else None
        # Compacted first, so that "before" is the data's size, not the filling's leftovers.
        if sqlite_path is not None:
            _sqlite(rt.engine, "VACUUM")
        else:
            _pg_vacuum(rt.engine, full=True)
        if sqlite_path is not None:
            before, table_before = _sqlite_sizes(rt.engine, sqlite_path), _sqlite_table(rt.engine)
        else:
            before, table_before = _pg_sizes(rt.engine)
        started = time.perf_counter()
        result = retention.prune(rt.engine, retention.cutoff(90, clock.now()))
        seconds = time.perf_counter() - started
        # The hourly run after it: only what is still to prune is walked, not what was pruned.
        batches = [0]
        started = time.perf_counter()
        retention.prune(
            rt.engine,
            retention.cutoff(90, clock.now()),
            on_batch=lambda _r: batches.__setitem__(0, batches[0] + 1),
        )
        again = time.perf_counter() - started
        if sqlite_path is not None:
            after, table_after = _sqlite_sizes(rt.engine, sqlite_path), _sqlite_table(rt.engine)
            _sqlite(rt.engine, "VACUUM")
            compacted = sqlite_path.stat().st_size
        else:
            after, table_after = _pg_sizes(rt.engine)
            _pg_vacuum(rt.engine, full=True)
            compacted = _pg_sizes(rt.engine)[0].on_disk
        return RetentionFigures(
            label=label,
            events=n,
            before=before,
            after=after,
            compacted=compacted,
            events_table_before=table_before,
            events_table_after=table_after,
            pruned=result.events,
            prune_seconds=seconds,
            body_bytes=body_bytes,
            again_batches=batches[0],
            again_seconds=again,
        )
    finally:
        rt.close()


def report(f: RetentionFigures) -> list[str]:
    if f.label == "SQLite":
        sizes = (
            f"{f.per(f.before.used):6.1f} MB before; after pruning {f.per(f.after.used):6.1f} MB "
            f"in use (the file stays {f.per(f.after.on_disk):.1f} MB, its free pages reused by "
            f"new events), {f.per(f.compacted):6.1f} MB after VACUUM"
        )
    else:
        sizes = (
            f"{f.per(f.before.on_disk):6.1f} MB before; after pruning and a plain VACUUM "
            f"{f.per(f.after.used):6.1f} MB in use (on disk {f.per(f.after.on_disk):.1f} MB, "
            f"the free space reused by new events), {f.per(f.compacted):6.1f} MB after "
            "VACUUM FULL events"
        )
    table = (
        f"; events table + indexes {f.per(f.events_table_before):.1f} → "
        f"{f.per(f.events_table_after):.1f} MB"
        if f.events_table_before
        else ""
    )
    return [
        f"  {f.label:<10} per 100,000 events: {sizes}",
        f"  {'':<10} bodies {f.per(f.body_bytes):.1f} MB; pruned {f.pruned} of {f.events} in "
        f"{f.prune_seconds:.1f} s ({f.pruned / max(f.prune_seconds, 1e-9):,.0f} events/s){table}",
        f"  {'':<10} the next run, nothing left to prune: {f.again_batches} batches, "
        f"{f.again_seconds * 1000:.0f} ms",
    ]
