"""Apply a batch of inbox events to the projections, in one transaction.

Parsing and handling are pure and done first, per event, so one malformed event fails alone;
then every good snapshot is written with one upsert per batch, whatever the number of merchants
in it (the store keeps the newest by the ordering rule), their history is recorded, and the
events are marked applied.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson
from sqlalchemy import Connection

from merchant_backend.store import inbox, objects
from merchant_backend.store.rows import HistoryRow, Snapshot
from merchant_backend.sync.handlers import EventNotUnderstood, snapshots_for


@dataclass
class BatchResult:
    applied: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)


def plan(
    batch: Sequence[inbox.ClaimedEvent],
) -> tuple[
    dict[tuple[str, str], list[Snapshot]], list[tuple[inbox.ClaimedEvent, Snapshot]], BatchResult
]:
    """Pure: group snapshots per (merchant, env) and note the events that cannot be handled."""
    result = BatchResult()
    grouped: dict[tuple[str, str], list[Snapshot]] = defaultdict(list)
    touched: list[tuple[inbox.ClaimedEvent, Snapshot]] = []
    for item in batch:
        try:
            doc = orjson.loads(item.payload)
            snaps = snapshots_for(doc)
        except (orjson.JSONDecodeError, EventNotUnderstood) as exc:
            result.failed[item.id] = str(exc)
            continue
        grouped[(item.merchant_id, item.env)].extend(snaps)
        touched.extend((item, s) for s in snaps)
        result.applied.append(item.id)
    return grouped, touched, result


def apply_batch(
    conn: Connection, batch: Sequence[inbox.ClaimedEvent], worker_id: str | None, at: float
) -> BatchResult:
    """``worker_id``: whose lease the batch is under; None if ``inbox.take_due`` took it in
    this transaction."""
    grouped, touched, result = plan(batch)
    objects.apply_snapshots_many(conn, grouped)
    objects.record_history(
        conn,
        [
            HistoryRow(
                item.merchant_id,
                item.env,
                snap.stripe_id,
                item.event_id,
                snap.object_type,
                item.type,
                item.created,
                at,
            )
            for item, snap in touched
        ],
    )
    inbox.mark_applied(conn, result.applied, worker_id, at)
    return result
