"""Pruning old event bodies when the operator asks (``events prune``); ``serve`` also prunes on
its own schedule (``services.background``). What is removed and what stays is the rule written
in ``store/retention.py``."""

from __future__ import annotations

import threading

from merchant_backend.runtime import Runtime
from merchant_backend.store import db, outbox, retention
from merchant_backend.store.retention import DAY as DAY
from merchant_backend.store.retention import PAUSE_BETWEEN as PAUSE_BETWEEN
from merchant_backend.store.retention import Progress
from merchant_backend.store.retention import PruneResult as PruneResult


def prune_events(
    rt: Runtime, before: float, *, dry_run: bool = False, on_batch: Progress | None = None
) -> PruneResult:
    """Remove the bodies of applied and ignored events received before ``before``, then the
    delivered outbound messages created before it, in small batches (``on_batch`` sees the
    running totals), resting ``PAUSE_BETWEEN`` after each as serve's pruner does; with
    ``dry_run`` only count them."""
    rest = threading.Event()  # never set: waiting on it is the pause (as Pruner's stop event)
    return retention.prune(
        rt.engine,
        before,
        dry_run=dry_run,
        on_batch=on_batch,
        pause=lambda: rest.wait(PAUSE_BETWEEN),
    )


def count_prunable(rt: Runtime, before: float) -> tuple[int, int, int]:
    """What a prune at ``before`` would remove: event bodies, their bytes, outbound messages."""
    with db.read(rt.engine) as conn:
        events, size = retention.count_prunable(conn, before)
        return events, size, outbox.count_prunable(conn, before)
