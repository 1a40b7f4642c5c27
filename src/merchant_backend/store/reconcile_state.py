"""Reconcile's progress and its lease, one row per data set (``reconcile_state``).

The state is a small JSON document: where the last finished run ended (``synced_until``), the
unfinished run with its cursor, the last run's summary, and the lease of the run under way.

One run at a time per data set: the lease (owner, until) is taken by compare-and-set inside a
write transaction (the row is locked with ``FOR UPDATE`` on PostgreSQL; SQLite serialises
writers anyway), renewed with every page commit and released at the end. A run that finds a
live lease gets ``ReconcileRunning``; a lease left by a crashed run expires after
``LEASE_SECONDS`` and the next run takes it over and resumes the crashed run's cursor.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select, update

from merchant_backend import clock, logs
from merchant_backend.errors import Conflict
from merchant_backend.i18n import N_
from merchant_backend.store.schema import reconcile_state
from merchant_backend.store.upsert import insert_for

# How long a run may go without committing a page before another run may take over. A page
# is one request: with the default timeout and retries (20 s x 3, plus 429 back-off) well
# under a minute, so 5 minutes means "this run is dead", and a crashed run blocks at most this.
LEASE_SECONDS = 300.0


def log() -> Any:
    # Looked up per use: a logger cached at import keeps the stream of the first caller, and
    # a CLI command run in-process (tests) closes its stream when it ends.
    return logs.get("merchant_backend.reconcile")


@dataclass
class Run:
    """One pass over a window; persisted after every page."""

    since: int
    until: int
    started_at: float
    cursor: str | None = None
    pages: int = 0
    fetched: int = 0
    new: int = 0
    known: int = 0
    skipped: int = 0
    rejected: int = 0
    oldest_seen: int | None = None
    resumed: bool = False


@dataclass
class Lease:
    """Who runs the data set's reconcile now; renewed with every page commit."""

    owner: str
    holder: str
    started_at: float
    until: float


@dataclass
class State:
    synced_until: int | None = None
    run: Run | None = None
    last_summary: dict[str, Any] | None = field(default=None)
    lease: Lease | None = None

    def dumps(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def loads(cls, text: str) -> State:
        raw = json.loads(text)
        run = raw.get("run")
        return cls(
            synced_until=raw.get("synced_until"),
            run=Run(**run) if run else None,
            last_summary=raw.get("last_summary"),
            lease=Lease(**lease) if (lease := raw.get("lease")) else None,
        )


class ReconcileRunning(Conflict):
    """Another run holds the data set's lease (or took it over from this one)."""


def may_take(lease: Lease | None, owner: str, at: float) -> bool:
    """May ``owner`` run now? Free, expired (its run died), or already ours. Pure."""
    return lease is None or lease.until <= at or lease.owner == owner


def utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


ALREADY_RUNNING = N_(
    "a reconcile for %(merchant_id)s/%(env)s is already running (started %(started)s, by "
    "%(holder)s); wait for it or retry after %(until)s"
)


def already_running(merchant_id: str, env: str, lease: Lease) -> ReconcileRunning:
    values = {
        "merchant_id": merchant_id,
        "env": env,
        "started": utc(lease.started_at),
        "holder": lease.holder,
        "until": utc(lease.until),
    }
    return ReconcileRunning.of(
        ALREADY_RUNNING, values, code="reconcile_running", extra={"retry_after": values["until"]}
    )


def lease_lost(merchant_id: str, env: str, lease: Lease | None) -> ReconcileRunning:
    by = f" by {lease.holder}" if lease is not None else ""
    return ReconcileRunning(
        f"this reconcile for {merchant_id}/{env} went longer than {LEASE_SECONDS:.0f} s "
        f"without progress and another run{by} took over; it goes on from the saved cursor",
        code="reconcile_lease_lost",
    )


def load_state(conn: Connection, merchant_id: str, env: str, *, lock: bool = False) -> State:
    """The stored state; ``lock`` holds the row until the transaction ends (PostgreSQL's
    ``FOR UPDATE``; SQLite's writing transactions are serialised anyway)."""
    query = select(reconcile_state.c.state).where(
        reconcile_state.c.merchant_id == merchant_id, reconcile_state.c.env == env
    )
    row = conn.execute(query.with_for_update() if lock else query).first()
    return State.loads(row[0]) if row else State()


def save_state(conn: Connection, merchant_id: str, env: str, state: State) -> None:
    stmt = insert_for(conn, reconcile_state).values(
        merchant_id=merchant_id, env=env, state=state.dumps(), updated_at=clock.now()
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["merchant_id", "env"],
            set_={"state": stmt.excluded.state, "updated_at": stmt.excluded.updated_at},
        )
    )


def _locked_state(conn: Connection, merchant_id: str, env: str) -> State:
    # A row must exist to be locked: without it two first runs would both see no lease. On
    # PostgreSQL the second insert waits for the first's commit and then does nothing.
    blank = insert_for(conn, reconcile_state).values(
        merchant_id=merchant_id, env=env, state=State().dumps(), updated_at=clock.now()
    )
    conn.execute(blank.on_conflict_do_nothing(index_elements=["merchant_id", "env"]))
    return load_state(conn, merchant_id, env, lock=True)


def take_lease(
    conn: Connection, merchant_id: str, env: str, owner: str, holder: str, at: float
) -> State:
    """Compare-and-set inside the caller's write transaction: the state with our lease, or
    ``ReconcileRunning`` when another live run holds it."""
    state = _locked_state(conn, merchant_id, env)
    held = state.lease
    if held is not None and not may_take(held, owner, at):
        raise already_running(merchant_id, env, held)
    if held is not None and held.owner != owner:
        log().warning(
            "reconcile takes over an expired lease",
            merchant_id=merchant_id,
            env=env,
            previous=held.holder,
            expired_at=utc(held.until),
        )
    state.lease = Lease(owner=owner, holder=holder, started_at=at, until=at + LEASE_SECONDS)
    return state


def check_still_ours(conn: Connection, merchant_id: str, env: str, owner: str) -> None:
    """Before writing our state: a run that stalled past its lease must not overwrite the
    cursor of the run that took over."""
    held = load_state(conn, merchant_id, env, lock=True).lease
    if held is None or held.owner != owner:
        raise lease_lost(merchant_id, env, held)


def release_lease(conn: Connection, merchant_id: str, env: str, owner: str) -> None:
    """Clear our lease, leaving the rest of the state as last committed (the cursor)."""
    state = load_state(conn, merchant_id, env, lock=True)
    if state.lease is None or state.lease.owner != owner:
        return
    state.lease = None
    conn.execute(
        update(reconcile_state)
        .where(reconcile_state.c.merchant_id == merchant_id, reconcile_state.c.env == env)
        .values(state=state.dumps(), updated_at=clock.now())
    )
