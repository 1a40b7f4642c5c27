"""Pruning old event bodies when the operator asks (``events prune``); ``serve`` also prunes on
its own schedule (``services.background``). What is removed and what stays is the rule written
in ``store/retention.py``."""

from __future__ import annotations

from merchant_backend.runtime import Runtime
from merchant_backend.store import db, retention
from merchant_backend.store.retention import DAY as DAY
from merchant_backend.store.retention import Progress
from merchant_backend.store.retention import PruneResult as PruneResult


def prune_events(
    rt: Runtime, before: float, *, dry_run: bool = False, on_batch: Progress | None = None
) -> PruneResult:
    """Remove the bodies of applied and ignored events received before ``before``, then the
    delivered outbound messages created before it, in small batches (``on_batch`` sees the
    running totals); with ``dry_run`` only count them."""
    return retention.prune(rt.engine, before, dry_run=dry_run, on_batch=on_batch)


def count_prunable(rt: Runtime, before: float) -> tuple[int, int]:
    """How many event bodies a prune at ``before`` would remove, and their bytes."""
    with db.read(rt.engine) as conn:
        return retention.count_prunable(conn, before)
