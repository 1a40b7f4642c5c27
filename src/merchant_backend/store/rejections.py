"""Webhook rejections per merchant, environment, hour and reason (for the overview page)."""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from merchant_backend.store.schema import webhook_rejections
from merchant_backend.store.upsert import insert_for


def record_rejections(conn: Connection, counts: dict[tuple[str, str, str], int], at: float) -> None:
    hour = int(at // 3600)
    stmt = insert_for(conn, webhook_rejections)
    stmt = stmt.on_conflict_do_update(
        index_elements=["merchant_id", "env", "hour", "reason"],
        set_={"count": webhook_rejections.c.count + stmt.excluded.count},
    )
    conn.execute(
        stmt,
        [
            {"merchant_id": m, "env": e, "hour": hour, "reason": r, "count": n}
            for (m, e, r), n in sorted(counts.items())
        ],
    )


def count_since(conn: Connection, merchant_id: str, env: str, since: float) -> dict[str, int]:
    rows = conn.execute(
        select(webhook_rejections.c.reason, func.sum(webhook_rejections.c.count))
        .where(
            webhook_rejections.c.merchant_id == merchant_id,
            webhook_rejections.c.env == env,
            webhook_rejections.c.hour >= int(since // 3600),
        )
        .group_by(webhook_rejections.c.reason)
    )
    return {r[0]: int(r[1]) for r in rows}
