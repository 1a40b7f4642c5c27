"""Recover events Stripe never delivered: page through ``GET /v1/events`` into the inbox.

A run covers a fixed window ``created[gte]=since``, ``created[lte]=until`` (until = when the
run started) and pages with ``starting_after``, as Stripe documents; it does not depend on the
order Stripe lists events in. Each page's new events and the run's progress (the cursor) are
committed in one transaction, so a run that crashes resumes at the page after the last commit
and nothing is inserted twice (the inbox is unique per event id anyway). Events of the 15
handled types are inserted with ``source="reconcile"``; the worker applies them like webhooks.

The next run starts where the last one ended (minus an overlap, because an event can become
listable a little after its ``created`` second), or at ``--since``; the first one goes back as
far as Stripe keeps events (30 days).

``types[]`` is not sent: the filtering is done here, which costs a little bandwidth on real
Stripe but works with any server that implements the documented basic list parameters.

One run at a time per data set: a run holds a lease stored with the state (owner, until),
taken by compare-and-set in a write transaction, renewed with every page commit and released at
the end, on success or failure. A second run that finds a live lease raises
``ReconcileRunning`` (a ``StripeProblem``: 409, exit 1) without calling Stripe. A lease left by
a crashed run expires after ``LEASE_SECONDS``; the next run takes it over and resumes the
crashed run's cursor.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, select, update

from merchant_backend import logs
from merchant_backend.clock import now
from merchant_backend.runtime import Runtime
from merchant_backend.store import datasets, db, inbox
from merchant_backend.store.schema import reconcile_state
from merchant_backend.store.upsert import insert_for
from merchant_backend.stripe.client import StripeConnection, connect
from merchant_backend.stripe.errors import StripeProblem
from merchant_backend.stripe.events import HANDLED_SET
from merchant_backend.stripe.signature import SignatureRejected
from merchant_backend.stripe.webhook_event import check_belongs, parse_event


def log() -> Any:
    # Looked up per use: a logger cached at import keeps the stream of the first caller, and
    # a CLI command run in-process (tests) closes its stream when it ends.
    return logs.get("merchant_backend.reconcile")


PAGE_SIZE = 100
OVERLAP_SECONDS = 300
RETENTION_SECONDS = 30 * 86400
# How long a run may go without committing a page before another run may take over. A page
# is one request: with the default timeout and retries (20 s x 3, plus 429 back-off) well
# under a minute, so 5 minutes means "this run is dead", and a crashed run blocks at most this.
LEASE_SECONDS = 300.0


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


def may_take(lease: Lease | None, owner: str, at: float) -> bool:
    """May ``owner`` run now? Free, expired (its run died), or already ours. Pure."""
    return lease is None or lease.until <= at or lease.owner == owner


def _utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ReconcileRunning(StripeProblem):
    """Another run holds the data set's lease. A ``StripeProblem`` so that every caller that
    already maps those (CLI exit code, API status, web page) reports it: 409, exit 1."""


def already_running(merchant_id: str, env: str, lease: Lease) -> ReconcileRunning:
    return ReconcileRunning(
        status=409,
        code="reconcile_running",
        message=(
            f"a reconcile for {merchant_id}/{env} is already running (started "
            f"{_utc(lease.started_at)}, by {lease.holder}); wait for it or retry after "
            f"{_utc(lease.until)}"
        ),
        exit_code=1,
        extra={"retry_after": _utc(lease.until)},
    )


def lease_lost(merchant_id: str, env: str, lease: Lease | None) -> ReconcileRunning:
    by = f" by {lease.holder}" if lease is not None else ""
    return ReconcileRunning(
        status=409,
        code="reconcile_lease_lost",
        message=(
            f"this reconcile for {merchant_id}/{env} went longer than {LEASE_SECONDS:.0f} s "
            f"without progress and another run{by} took over; it goes on from the saved cursor"
        ),
        exit_code=1,
    )


def default_holder() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}"


def parse_since(text: str) -> int:
    """``--since``: unix seconds, or an ISO 8601 date/time (UTC unless it says otherwise)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"--since must be unix seconds or an ISO date such as 2026-01-31 or "
            f"2026-01-31T12:00:00Z, not {text[:40]!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp())


def plan_run(state: State, since: int | None, at: float) -> Run:
    """Resume the unfinished run, or start the next window. Pure."""
    held = state.run
    if held is not None and (since is None or since == held.since):
        held.resumed = True
        return held
    if since is None:
        since = (
            state.synced_until - OVERLAP_SECONDS
            if state.synced_until is not None
            else int(at) - RETENTION_SECONDS
        )
    return Run(since=since, until=int(at), started_at=at)


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
        merchant_id=merchant_id, env=env, state=state.dumps(), updated_at=now()
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
        merchant_id=merchant_id, env=env, state=State().dumps(), updated_at=now()
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
            expired_at=_utc(held.until),
        )
    state.lease = Lease(owner=owner, holder=holder, started_at=at, until=at + LEASE_SECONDS)
    return state


def _still_ours(conn: Connection, merchant_id: str, env: str, owner: str) -> None:
    """Before writing our state: a run that stalled past its lease must not overwrite the
    cursor of the run that took over."""
    held = load_state(conn, merchant_id, env, lock=True).lease
    if held is None or held.owner != owner:
        raise lease_lost(merchant_id, env, held)


def release_lease(engine: Any, merchant_id: str, env: str, owner: str) -> None:
    """Clear our lease, leaving the rest of the state as last committed (the cursor)."""
    with db.write(engine) as conn:
        state = load_state(conn, merchant_id, env, lock=True)
        if state.lease is None or state.lease.owner != owner:
            return
        state.lease = None
        conn.execute(
            update(reconcile_state)
            .where(reconcile_state.c.merchant_id == merchant_id, reconcile_state.c.env == env)
            .values(state=state.dumps(), updated_at=now())
        )


@dataclass(frozen=True)
class Sorted:
    keep: list[inbox.NewEvent]
    skipped: int
    rejected: int


def sort_page(events: list[dict[str, Any]], merchant_id: str, env: str, account_id: str) -> Sorted:
    """The page's events of the 15 types that belong to this data set, as inbox rows. Pure."""
    keep: list[inbox.NewEvent] = []
    skipped = rejected = 0
    for doc in events:
        if doc.get("type") not in HANDLED_SET:
            skipped += 1
            continue
        try:
            # Integers past 64 bits do not serialise: not an event Stripe sends either.
            payload = orjson.dumps(doc)
            event, _ = parse_event(payload)
            # Listed with this environment's key, so a mismatch means a broken server.
            check_belongs(event, env, account_id)
        except (SignatureRejected, orjson.JSONEncodeError) as exc:
            reason = exc.reason if isinstance(exc, SignatureRejected) else "not_an_event"
            log().warning(
                "reconcile skipped event", event_id=str(doc.get("id"))[:255], reason=reason
            )
            rejected += 1
            continue
        keep.append(inbox.NewEvent.of(event, merchant_id, env, payload, "reconcile"))
    return Sorted(keep, skipped, rejected)


def _fetch_page(sc: StripeConnection, run: Run) -> tuple[list[dict[str, Any]], bool]:
    params: dict[str, Any] = {
        "limit": PAGE_SIZE,
        "created": {"gte": run.since, "lte": run.until},
    }
    if run.cursor:
        params["starting_after"] = run.cursor

    def fetch() -> tuple[list[dict[str, Any]], bool]:
        # A raw request: turning a page into SDK objects costs ~90% of the time of a run, and
        # we keep the events exactly as Stripe sent them anyway.
        response = sc.client.raw_request("get", "/v1/events", **params)
        page = json.loads(response.body)
        data = page.get("data") if isinstance(page, dict) else None
        if not isinstance(data, list):
            raise ValueError("Stripe's event list has no data")
        return [d for d in data if isinstance(d, dict)], bool(page.get("has_more"))

    return sc.call("events.list", "list events", fetch)


def summary_of(merchant_id: str, env: str, run: Run, finished: bool) -> dict[str, Any]:
    return {
        "merchant_id": merchant_id,
        "env": env,
        "since": run.since,
        "until": run.until,
        "finished": finished,
        "resumed": run.resumed,
        "pages": run.pages,
        "fetched": run.fetched,
        "new": run.new,
        "already_known": run.known,
        "skipped_types": run.skipped,
        "rejected": run.rejected,
    }


Progress = Callable[[Run], None]


def reconcile(
    rt: Runtime,
    merchant_id: str,
    env: str,
    *,
    since: int | None = None,
    on_page: Progress | None = None,
    holder: str | None = None,
) -> dict[str, Any]:
    """Fetch the window's events, insert the missing ones; returns the run's summary.

    Raises ``ReconcileRunning`` when another run of the data set is under way; ``holder``
    names this one in that message for the other callers (default: pid and host)."""
    sc = connect(rt, merchant_id, env)
    owner = uuid.uuid4().hex
    who = holder or default_holder()
    with db.write(rt.engine) as conn:
        at = now()
        state = take_lease(conn, merchant_id, env, owner, who, at)
        run = plan_run(state, since, at)
        state.run = run
        save_state(conn, merchant_id, env, state)
    try:
        summary = _run(rt, sc, merchant_id, env, state, run, owner, on_page)
    finally:
        try:
            release_lease(rt.engine, merchant_id, env, owner)
        except Exception as exc:  # the run's own error matters more; the lease expires
            log().warning(
                "reconcile lease not released",
                merchant_id=merchant_id,
                env=env,
                error=logs.redact(f"{type(exc).__name__}: {exc}")[:300],
            )
    log().info("reconcile finished", **{k: v for k, v in summary.items() if k != "finished"})
    return summary


def _run(
    rt: Runtime,
    sc: StripeConnection,
    merchant_id: str,
    env: str,
    state: State,
    run: Run,
    owner: str,
    on_page: Progress | None,
) -> dict[str, Any]:
    """The pages of ``run``, with ``state`` (holding our lease) saved after each."""
    if run.resumed:
        log().info("reconcile resumes", merchant_id=merchant_id, env=env, pages=run.pages)
    while True:
        events, has_more = _fetch_page(sc, run)
        page = sort_page(events, merchant_id, env, sc.account_id)
        with db.write(rt.engine) as conn:
            _still_ours(conn, merchant_id, env, owner)
            # One event the database refuses fails alone (counted as rejected, and logged);
            # it must not stop the run at this page for ever.
            new, refused = inbox.insert_isolated(conn, page.keep, now())
            for key, exc in refused.items():
                log().warning(
                    "reconcile could not store event",
                    event_id=key[2],
                    error=f"{type(exc).__name__}: {exc}"[:300],
                )
            run.pages += 1
            run.fetched += len(events)
            run.new += len(new)
            run.known += len(page.keep) - len(new) - len(refused)
            run.skipped += page.skipped
            run.rejected += page.rejected + len(refused)
            created = [e["created"] for e in events if isinstance(e.get("created"), int)]
            if created:
                oldest = min(created)
                run.oldest_seen = (
                    oldest if run.oldest_seen is None else min(oldest, run.oldest_seen)
                )
            if events:
                run.cursor = str(events[-1].get("id"))
            if state.lease is not None:  # always: take_lease put ours there
                state.lease.until = now() + LEASE_SECONDS
            save_state(conn, merchant_id, env, state)
        if on_page is not None:
            on_page(run)
        if not has_more or not events:
            break
    summary = summary_of(merchant_id, env, run, finished=True)
    with db.write(rt.engine) as conn:
        _still_ours(conn, merchant_id, env, owner)
        state.synced_until = max(state.synced_until or 0, run.until)
        state.run = None
        state.last_summary = summary
        state.lease = None
        save_state(conn, merchant_id, env, state)
    return summary


class Scheduler:
    """Reconciles every data set every ``interval`` seconds, in a thread inside ``serve``.

    A failure (Stripe down, a key revoked) is logged and the next data set goes on; the
    next round resumes it. Runs once right away: a restart after downtime is when it matters.
    """

    def __init__(self, rt: Runtime, interval: float) -> None:
        self.rt = rt
        self.interval = interval
        self._stop = threading.Event()
        self.who = default_holder()

    def run_once(self) -> int:
        with db.read(self.rt.engine) as conn:
            keys = datasets.list_keys(conn)
        done = 0
        for merchant_id, env in keys:
            if self._stop.is_set():
                break
            try:
                reconcile(self.rt, merchant_id, env, holder=f"the scheduler of serve ({self.who})")
                done += 1
            except ReconcileRunning as exc:
                # A CLI run or another serve process is on it: its run covers this round.
                log().info(
                    "scheduled reconcile skipped", merchant_id=merchant_id, env=env, reason=str(exc)
                )
            except Exception as exc:  # one broken data set must not stop the others
                log().warning(
                    "scheduled reconcile failed",
                    merchant_id=merchant_id,
                    env=env,
                    error=logs.redact(f"{type(exc).__name__}: {exc}")[:300],
                )
        return done

    def run_forever(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as exc:  # the database is away: try again next round
                log().error("reconcile round failed", error=logs.redact(str(exc))[:300])
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, name="reconcile", daemon=True)
        thread.start()
        return thread
