"""Group commit for the webhook inbox.

Each request hands its event to one writer per process and waits for the commit. While a
batch is being committed, new events queue up and go into the next batch together, so under
load one fsync covers many requests, and a 2xx is still only sent after its own commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from merchant_backend import clock, logs, metrics
from merchant_backend.store import datasets, db, inbox
from merchant_backend.store.rejections import record_rejections

log = logs.get("merchant_backend.inbox")


class InboxUnavailable(Exception):
    """The event could not be committed; the caller answers 503 and Stripe retries."""


@dataclass(slots=True)
class _Pending:
    event: inbox.NewEvent
    future: asyncio.Future[bool]


def _expire(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_exception(InboxUnavailable("inbox commit timed out"))


T = TypeVar("T")


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class _CommitThread:
    """One thread that runs the writer's commits, handed work through a queue.

    ``asyncio.to_thread`` per batch copied the context and chained two futures through the
    default pool: a tenth of a delivery's CPU in the profile. Commits are one at a time anyway.
    """

    def __init__(self) -> None:
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="inbox-commit", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            loop, future, fn, args = item
            try:
                result = fn(*args)
            except BaseException as exc:
                loop.call_soon_threadsafe(_settle, future, False, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, True, result)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._work.put((loop, future, fn, args))
        return await future

    def close(self) -> None:
        self._work.put(None)


class InboxWriter:
    def __init__(
        self,
        engine: Engine,
        *,
        max_batch: int = 256,
        max_queue: int = 20_000,
        timeout: float = 10.0,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        # Called once a batch with new events has committed: wakes this process's worker.
        self.on_commit = on_commit
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.timeout = timeout
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._thread: _CommitThread | None = None
        # Rejection counts are best effort: flushed every few seconds, never awaited.
        self._rejections: dict[tuple[str, str, str], int] = defaultdict(int)
        # last_delivery_at is shown in whole seconds: writing it once a second per data set,
        # not with every batch, spares each group commit an UPDATE and a page in the log.
        self._delivery_recorded: dict[tuple[str, str], float] = {}

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        self._thread = _CommitThread()
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._run(), name="inbox-writer")
        self._flusher = asyncio.create_task(self._flush_rejections(), name="rejection-flusher")

    async def stop(self) -> None:
        for task in (self._task, self._flusher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._flusher = None
        await self.flush_rejections()
        if self._thread is not None:
            self._thread.close()
            self._thread = None

    async def _flush_rejections(self) -> None:
        """Rejections without events to ride along with are written every few seconds."""
        while True:
            await asyncio.sleep(2.0)
            await self.flush_rejections()

    async def flush_rejections(self) -> None:
        """Write the rejection counts noted so far (also called by tests and at shutdown)."""
        if not self._rejections:
            return
        rejections, self._rejections = self._rejections, defaultdict(int)
        try:
            await self._call(self._commit, [], dict(rejections))
        except Exception as exc:
            # Not put back: if these rows were what failed, they would fail every batch after.
            log.warning("could not record rejections", error=type(exc).__name__)

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._thread is None:  # not started (or stopped): a flush still works
            return await asyncio.to_thread(fn, *args)
        return await self._thread.call(fn, *args)

    def note_rejection(self, merchant_id: str, env: str, reason: str) -> None:
        self._rejections[(merchant_id, env, reason)] += 1

    async def submit(self, event: inbox.NewEvent) -> bool:
        """Wait until ``event`` is committed; True if it was new, False if a duplicate."""
        if self._queue is None or self._task is None or self._task.done():
            raise InboxUnavailable("inbox writer is not running")
        if self._queue.qsize() >= self.max_queue:
            raise InboxUnavailable("inbox queue is full")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        # A bare timer, not wait_for's extra task per request. The writer skips a future that
        # timed out; its event may still commit, and Stripe's retry is then a duplicate.
        timer = loop.call_later(self.timeout, _expire, future)
        self._queue.put_nowait(_Pending(event, future))
        try:
            return await future
        finally:
            timer.cancel()

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            first = await self._queue.get()
            batch = [first]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            started = time.perf_counter()
            try:
                # Rejection counts never ride along: if writing them failed, good events would
                # answer 503 with them. The flusher writes them in their own transaction.
                new = await self._call(self._commit, batch, {})
            except Exception as exc:
                log.error(
                    "inbox group commit failed",
                    events=len(batch),
                    error=logs.error_text(exc),
                )
                await self._one_by_one(batch, exc)
                continue
            if new and self.on_commit is not None:
                self.on_commit()
            metrics.INGEST_COMMIT_SECONDS.observe(time.perf_counter() - started)
            metrics.INGEST_BATCH.observe(len(batch))
            for item in batch:
                key = (item.event.merchant_id, item.event.env, item.event.event_id)
                if not item.future.done():
                    item.future.set_result(key in new)
                # The first copy of an event in a batch is the new one; repeats are duplicates.
                new.discard(key)

    async def _one_by_one(self, batch: list[_Pending], failure: Exception) -> None:
        """After a failed group commit, each event in its own savepoint: only a row that the
        database refuses fails (503, and Stripe retries it); every other one commits and gets
        its 2xx. One merchant's event must never fail another merchant's (issue 9)."""
        if isinstance(failure, OperationalError) or len(batch) == 1:
            # The database itself is failing (gone, locked), or the one event was the batch.
            refused: dict[inbox.Key, Exception] = {}
            new: set[inbox.Key] = set()
            failed_all = True
        else:
            try:
                new, refused = await self._call(self._commit_each, batch)
                failed_all = False
            except Exception as exc:
                log.error("inbox commit failed", error=logs.error_text(exc))
                failed_all = True
        for item in batch:
            key = (item.event.merchant_id, item.event.env, item.event.event_id)
            if item.future.done():
                continue
            if failed_all or key in refused:
                item.future.set_exception(InboxUnavailable("inbox commit failed"))
            else:
                item.future.set_result(key in new)
            new.discard(key)
        for key, refusal in refused.items():
            log.error(
                "inbox refused an event",
                merchant_id=key[0],
                env=key[1],
                event_id=key[2][:255],
                error=logs.error_text(refusal),
            )

    def _commit_each(
        self, batch: list[_Pending]
    ) -> tuple[set[inbox.Key], dict[inbox.Key, Exception]]:
        at = clock.now()
        with db.write(self.engine) as conn:
            new, refused = inbox.insert_each(conn, [p.event for p in batch], at)
            recorded = self._deliveries_due(
                {
                    (p.event.merchant_id, p.event.env)
                    for p in batch
                    if (p.event.merchant_id, p.event.env, p.event.event_id) not in refused
                },
                at,
            )
            for merchant_id, env in recorded:
                datasets.record_delivery(conn, merchant_id, env, at)
        self._delivered(recorded, at)
        return new, refused

    def _commit(
        self, batch: list[_Pending], rejections: dict[tuple[str, str, str], int]
    ) -> set[tuple[str, str, str]]:
        at = clock.now()
        if rejections:
            # The flusher's own transaction (never with a batch of events, see _run).
            with db.write(self.engine) as conn:
                record_rejections(conn, rejections, at)
        if not batch:
            return set()
        # The group commit on the driver's cursor: see db.raw_write for what it saves.
        dialect = self.engine.dialect.name
        recorded = self._deliveries_due({(p.event.merchant_id, p.event.env) for p in batch}, at)
        with db.raw_write(self.engine) as cursor:
            new = inbox.insert_new_dbapi(cursor, dialect, [p.event for p in batch], at)
            for merchant_id, env in recorded:
                datasets.record_delivery_dbapi(cursor, dialect, merchant_id, env, at)
        self._delivered(recorded, at)
        return new

    def _deliveries_due(self, data_sets: set[tuple[str, str]], at: float) -> list[tuple[str, str]]:
        # Sorted: two processes updating the same rows in different orders deadlock on
        # PostgreSQL (and the loser's whole batch would answer 503).
        return [
            key for key in sorted(data_sets) if at - self._delivery_recorded.get(key, 0.0) >= 1.0
        ]

    def _delivered(self, recorded: list[tuple[str, str]], at: float) -> None:
        # Only once committed: a rolled-back batch must not hold back the next one's update.
        for key in recorded:
            self._delivery_recorded[key] = at
