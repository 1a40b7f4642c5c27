"""The worker: lease due events from the inbox, apply them, retry failures, give up on poison.

Runs as a thread inside ``serve`` or as ``merchant-backend worker`` processes. Any number may
run against PostgreSQL; each batch is leased first (so a killed worker's events come back when
the lease runs out) and then applied and marked in one transaction (so nothing is half-applied).
SQLite has one writer at a time: there a batch is taken, applied and marked in one writing
transaction, with no lease (a killed worker's transaction rolls back and its events are due at
once).
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from merchant_backend import clock, logs, metrics
from merchant_backend.settings import Settings
from merchant_backend.store import db, inbox
from merchant_backend.store.inbox_signal import Doorbell, Listener
from merchant_backend.sync.apply import BatchResult, apply_batch
from merchant_backend.sync.retry import gives_up, retry_delay

log = logs.get("merchant_backend.worker")

BACKLOG_GAUGE_EVERY = 5.0  # seconds
MAX_PACE = 0.02  # seconds: the longest rest of a pacing worker between two batches


def describe(exc: Exception) -> str:
    """An error as kept in ``last_error``: the driver's message, not SQLAlchemy's text, which
    carries the statement and its parameters (whole Stripe objects), and only its first line
    (``logs.error_text``: PostgreSQL's DETAIL line repeats the refused row's values)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return logs.error_text(exc.orig, limit=2000)
    return logs.error_text(exc, limit=2000)


def _observe_lag(batch: list[inbox.ClaimedEvent], applied: list[int], at: float) -> None:
    done = set(applied)
    by_source: dict[str, Any] = {}  # the histogram of each source, looked up once per batch
    for b in batch:
        if b.id in done:
            lag = by_source.get(b.source)
            if lag is None:
                lag = by_source[b.source] = metrics.EVENT_APPLY_LAG.labels(b.source)
            lag.observe(max(0.0, at - b.received_at))


def _lost(item: inbox.ClaimedEvent) -> str:
    return f"leased {item.attempts} times: workers died applying it"


def _report_failure(item: inbox.ClaimedEvent, dead: bool, error: str) -> None:
    metrics.EVENTS_PROCESSED.labels("dead" if dead else "failed").inc()
    log.warning(
        "event failed",
        event_id=item.event_id,
        type=item.type,
        attempts=item.attempts,
        dead=dead,
        error=error[:300],
    )


def new_worker_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _last_lane(batch: list[inbox.ClaimedEvent]) -> inbox.Lane:
    """The last lane to take its first turn in a claimed batch (claims list lanes in turn)."""
    seen: dict[inbox.Lane, None] = {}
    for b in batch:
        seen.setdefault((b.merchant_id, b.env, b.source))
    return next(reversed(seen))


@dataclass
class Worker:
    """``bell`` wakes the worker when events are committed (the process's inbox writer rings
    it); the poll interval is only a fallback. On PostgreSQL ``run_forever`` also listens for
    the NOTIFY other processes send when they insert events."""

    engine: Engine
    settings: Settings
    worker_id: str = ""
    bell: Doorbell = field(default_factory=Doorbell)
    # Inside serve: rest between small batches as long as each took (see _run_forever).
    pace: bool = False

    def __post_init__(self) -> None:
        self.worker_id = self.worker_id or new_worker_id()
        self._stop = threading.Event()
        # Where the round robin between lanes goes on from (see inbox.claim).
        self._after: inbox.Lane | None = None
        self._one_transaction = db.is_sqlite(self.engine)

    def run_once(self) -> int:
        """Claim and apply one batch; returns how many events it handled."""
        if self._one_transaction:
            return self._take_and_apply()
        s = self.settings
        at = clock.now()
        # The lease needs no flush to disk: lost in a power cut, the events are due again.
        with db.write(self.engine, flush=False) as conn:
            batch = inbox.claim(
                conn,
                self.worker_id,
                now=at,
                lease_seconds=s.worker_lease_seconds,
                limit=s.worker_batch_size,
                after=self._after,
            )
        if not batch:
            return 0
        self._after = _last_lane(batch)
        lost = [b for b in batch if b.attempts > s.worker_max_attempts]
        if lost:
            # Only a lease that ran out raises attempts past the limit (a failure at the limit
            # goes dead): a worker died on these again and again, so stop feeding them to workers.
            self._fail(lost, {b.id: _lost(b) for b in lost})
            batch = [b for b in batch if b.attempts <= s.worker_max_attempts]
        started = time.perf_counter()
        try:
            with db.write(self.engine) as conn:
                result = apply_batch(conn, batch, self.worker_id, clock.now())
        except Exception as exc:
            log.warning("batch failed", events=len(batch), error=type(exc).__name__)
            self._apply_one_by_one(batch)
            return len(batch) + len(lost)
        metrics.WORKER_BATCH_SECONDS.observe(time.perf_counter() - started)
        metrics.EVENTS_PROCESSED.labels("applied").inc(len(result.applied))
        _observe_lag(batch, result.applied, clock.now())
        if result.failed:
            self._fail([b for b in batch if b.id in result.failed], result.failed)
        return len(batch) + len(lost)

    def _take_and_apply(self) -> int:
        """SQLite: take a batch (``inbox.take_due``), apply it and mark it, in one writing
        transaction; a lease would cost a write of each event and a commit more (see
        ``take_due``). If applying fails, it is rolled back and taken again, each event in
        its own savepoint, so one the database refuses fails alone."""
        started = time.perf_counter()
        try:
            with db.write(self.engine) as conn:
                batch, lost, result = self._apply_taken(conn, one_by_one=False)
        except Exception as exc:
            log.warning("batch failed", error=type(exc).__name__)
            with db.write(self.engine) as conn:
                batch, lost, result = self._apply_taken(conn, one_by_one=True)
        if batch:
            metrics.WORKER_BATCH_SECONDS.observe(time.perf_counter() - started)
            metrics.EVENTS_PROCESSED.labels("applied").inc(len(result.applied))
            _observe_lag(batch, result.applied, clock.now())
        return len(batch) + len(lost)

    def _apply_taken(
        self, conn: Connection, *, one_by_one: bool
    ) -> tuple[list[inbox.ClaimedEvent], list[inbox.ClaimedEvent], BatchResult]:
        """Take due events, apply them, mark them (in ``conn``'s transaction): (the batch
        applied or failed, the events given up on before, the result)."""
        s = self.settings
        batch = inbox.take_due(conn, now=clock.now(), limit=s.worker_batch_size, after=self._after)
        if not batch:
            return [], [], BatchResult()
        lost = [b for b in batch if b.attempts > s.worker_max_attempts]
        if lost:  # only leases that ran out (before an upgrade, or ``inbox.claim``) get here
            self._mark_failed(conn, lost, {b.id: _lost(b) for b in lost}, worker_id=None)
            batch = [b for b in batch if b.attempts <= s.worker_max_attempts]
        if one_by_one:
            result = BatchResult()
            for n, item in enumerate(batch):
                try:
                    with conn.begin_nested():
                        one = apply_batch(conn, [item], None, clock.now())
                except OperationalError as exc:
                    # The database itself is failing (gone, locked): no event is to blame, and
                    # trying the rest one by one would only wait on it once per event.
                    result.failed.update((b.id, describe(exc)) for b in batch[n:])
                    break
                except Exception as exc:
                    result.failed[item.id] = describe(exc)
                    continue
                result.applied += one.applied
                result.failed.update(one.failed)
        else:
            result = apply_batch(conn, batch, None, clock.now())
        if result.failed:
            failed = [b for b in batch if b.id in result.failed]
            self._mark_failed(conn, failed, result.failed, worker_id=None)
        # Not reached if applying raised: the batch taken again one by one is the same one.
        self._after = _last_lane(batch or lost)
        return batch, lost, result

    def _apply_one_by_one(self, batch: list[inbox.ClaimedEvent]) -> None:
        """After a failed batch, each event in its own transaction, so one that the database
        refuses fails alone instead of taking the whole batch to ``dead`` with it."""
        errors: dict[int, str] = {}
        for n, item in enumerate(batch):
            try:
                with db.write(self.engine) as conn:
                    result = apply_batch(conn, [item], self.worker_id, clock.now())
            except OperationalError as exc:
                # The database itself is failing (gone, locked): no event is to blame, and
                # trying the rest one by one would only wait on it once per event.
                errors.update((b.id, describe(exc)) for b in batch[n:])
                break
            except Exception as exc:
                errors[item.id] = describe(exc)
                continue
            metrics.EVENTS_PROCESSED.labels("applied").inc(len(result.applied))
            _observe_lag([item], result.applied, clock.now())
            errors.update(result.failed)
        if errors:
            self._fail([b for b in batch if b.id in errors], errors)

    def _fail(self, batch: list[inbox.ClaimedEvent], errors: dict[int, str]) -> None:
        with db.write(self.engine) as conn:
            self._mark_failed(conn, batch, errors, worker_id=self.worker_id)

    def _mark_failed(
        self,
        conn: Connection,
        batch: list[inbox.ClaimedEvent],
        errors: dict[int, str],
        *,
        worker_id: str | None,
    ) -> None:
        s = self.settings
        at = clock.now()
        for item in batch:
            dead = gives_up(item.attempts, s.worker_max_attempts)
            delay = retry_delay(item.attempts, base=s.worker_backoff_base, cap=s.worker_backoff_max)
            inbox.mark_failed(
                conn, item.id, worker_id, error=errors[item.id], dead=dead, retry_at=at + delay
            )
            # Counted and logged when the transaction commits: a rolled-back batch is retried.
            db.after_commit(conn, functools.partial(_report_failure, item, dead, errors[item.id]))

    def drain(self, max_batches: int = 1_000_000) -> int:
        """Apply everything that is due now (used by tests, replay and reconcile)."""
        total = 0
        for _ in range(max_batches):
            n = self.run_once()
            if n == 0:
                break
            total += n
        return total

    def backlog(self) -> int:
        with db.read(self.engine) as conn:
            return inbox.backlog(conn)

    def run_forever(self) -> None:
        log.info("worker started", worker_id=self.worker_id)
        listener = None
        if not db.is_sqlite(self.engine):
            listener = Listener(self.engine, self.bell)
            listener.start()
        try:
            self._run_forever()
        finally:
            if listener is not None:
                listener.stop()
        log.info("worker stopped", worker_id=self.worker_id)

    def _run_forever(self) -> None:
        gauge_due = 0.0
        while not self._stop.is_set():
            # Cleared before looking, so a ring while we claim or apply is never lost.
            self.bell.clear()
            started = time.perf_counter()
            try:
                handled = self.run_once()
            except Exception as exc:  # database unreachable: wait and try again
                log.error("worker round failed", error=logs.error_text(exc))
                handled = 0
                self._stop.wait(min(5.0, self.settings.worker_poll_interval * 10))
                continue
            if handled >= self.settings.worker_batch_size:
                continue  # a backlog: on at once
            if handled and self.pace:
                # Caught up, beside the HTTP loop in one process (one GIL): rest as long as the
                # batch took before the next, so under load events gather into larger batches
                # (a batch's fixed cost is most of a small one's) and ingest keeps the CPU.
                self._stop.wait(min(MAX_PACE, time.perf_counter() - started))
                continue
            if handled:
                continue
            # Idle: the gauge at most every few seconds (woken per commit, a worker is idle
            # hundreds of times a second under load, and counting is not free).
            if time.monotonic() >= gauge_due:
                gauge_due = time.monotonic() + BACKLOG_GAUGE_EVERY
                with contextlib.suppress(Exception):  # a gauge is not worth a crash
                    metrics.INBOX_BACKLOG.set(self.backlog())
            # Until the inbox writer (or another process's NOTIFY) rings; polling is the fallback.
            self.bell.wait(self.settings.worker_poll_interval)

    def stop(self) -> None:
        self._stop.set()
        self.bell.ring()

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, name="event-worker", daemon=True)
        thread.start()
        return thread
