"""Pruning old event bodies when the operator asks (``events prune``); ``serve`` also prunes on
its own schedule (``services.background``). What is removed and what stays is the rule written
in ``store/retention.py``."""

from __future__ import annotations

import threading

from merchant_backend.runtime import Runtime
from merchant_backend.store import db, outbox, retention
from merchant_backend.store.retention import DAY as DAY
from merchant_backend.store.retention import Progress
from merchant_backend.store.retention import PruneResult as PruneResult

# Between two batches, as serve's own pruner rests: on SQLite a running serve is another
# process waiting for the one write lock, and SQLite's busy handler (which sleeps 1, 2, 5,
# 10 … ms between its tries) would lose every race to a prune that took the lock back at once;
# past the busy timeout its deliveries would answer 503.
PAUSE_BETWEEN = 0.05  # seconds


def prune_events(
    rt: Runtime,
    before: float,
    *,
    dry_run: bool = False,
    on_batch: Progress | None = None,
    pause_between: float = PAUSE_BETWEEN,
    stop: threading.Event | None = None,
) -> PruneResult:
    """Remove the bodies of applied and ignored events received before ``before``, then the
    delivered outbound messages created before it, in small batches (``on_batch`` sees the
    running totals), resting ``pause_between`` seconds after each (setting ``stop`` ends the
    run after the batch in progress); with ``dry_run`` only count them."""
    rest = stop or threading.Event()
    return retention.prune(
        rt.engine,
        before,
        dry_run=dry_run,
        on_batch=on_batch,
        pause=lambda: rest.wait(pause_between),
    )


def count_prunable(rt: Runtime, before: float) -> tuple[int, int, int]:
    """What a prune at ``before`` would remove: event bodies, their bytes, outbound messages."""
    with db.read(rt.engine) as conn:
        events, size = retention.count_prunable(conn, before)
        return events, size, outbox.count_prunable(conn, before)
