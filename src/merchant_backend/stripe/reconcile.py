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
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, select

from merchant_backend import logs
from merchant_backend.clock import now
from merchant_backend.runtime import Runtime
from merchant_backend.store import datasets, db, inbox
from merchant_backend.store.schema import reconcile_state
from merchant_backend.store.upsert import insert_for
from merchant_backend.stripe.client import StripeConnection, connect
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
class State:
    synced_until: int | None = None
    run: Run | None = None
    last_summary: dict[str, Any] | None = field(default=None)

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
        )


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


def load_state(conn: Connection, merchant_id: str, env: str) -> State:
    row = conn.execute(
        select(reconcile_state.c.state).where(
            reconcile_state.c.merchant_id == merchant_id, reconcile_state.c.env == env
        )
    ).first()
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
        payload = orjson.dumps(doc)
        try:
            event, _ = parse_event(payload)
            # Listed with this environment's key, so a mismatch means a broken server.
            check_belongs(event, env, account_id)
        except SignatureRejected as exc:
            log().warning("reconcile skipped event", event_id=doc.get("id"), reason=exc.reason)
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
) -> dict[str, Any]:
    """Fetch the window's events, insert the missing ones; returns the run's summary."""
    sc = connect(rt, merchant_id, env)
    with db.write(rt.engine) as conn:
        state = load_state(conn, merchant_id, env)
        run = plan_run(state, since, now())
        state.run = run
        save_state(conn, merchant_id, env, state)
    if run.resumed:
        log().info("reconcile resumes", merchant_id=merchant_id, env=env, pages=run.pages)
    while True:
        events, has_more = _fetch_page(sc, run)
        page = sort_page(events, merchant_id, env, sc.account_id)
        with db.write(rt.engine) as conn:
            new = inbox.insert_new(conn, page.keep, now())
            run.pages += 1
            run.fetched += len(events)
            run.new += len(new)
            run.known += len(page.keep) - len(new)
            run.skipped += page.skipped
            run.rejected += page.rejected
            created = [e["created"] for e in events if isinstance(e.get("created"), int)]
            if created:
                oldest = min(created)
                run.oldest_seen = (
                    oldest if run.oldest_seen is None else min(oldest, run.oldest_seen)
                )
            if events:
                run.cursor = str(events[-1].get("id"))
            save_state(conn, merchant_id, env, state)
        if on_page is not None:
            on_page(run)
        if not has_more or not events:
            break
    summary = summary_of(merchant_id, env, run, finished=True)
    with db.write(rt.engine) as conn:
        state.synced_until = max(state.synced_until or 0, run.until)
        state.run = None
        state.last_summary = summary
        save_state(conn, merchant_id, env, state)
    log().info("reconcile finished", **{k: v for k, v in summary.items() if k != "finished"})
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

    def run_once(self) -> int:
        with db.read(self.rt.engine) as conn:
            keys = datasets.list_keys(conn)
        done = 0
        for merchant_id, env in keys:
            if self._stop.is_set():
                break
            try:
                reconcile(self.rt, merchant_id, env)
                done += 1
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
