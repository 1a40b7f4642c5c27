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

One run at a time per data set: the run's state and its lease are kept by
``store.reconcile_state``; a second run that finds a live lease gets ``ReconcileRunning`` (a
``Conflict``) without calling Stripe, and a crashed run's lease expires and is taken over.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from merchant_backend import clock, logs
from merchant_backend.errors import EventRejected
from merchant_backend.runtime import Runtime
from merchant_backend.store import datasets, db, inbox
from merchant_backend.store.reconcile_state import (
    LEASE_SECONDS,
    ReconcileRunning,
    Run,
    State,
    check_still_ours,
    release_lease,
    save_state,
    take_lease,
)
from merchant_backend.stripe.client import StripeConnection, connect
from merchant_backend.stripe.webhook_event import check_belongs, parse_event
from merchant_backend.validation import parse_ascii_int
from merchant_backend.vocabulary import HANDLED_SET


def log() -> Any:
    # Looked up per use: a logger cached at import keeps the stream of the first caller, and
    # a CLI command run in-process (tests) closes its stream when it ends.
    return logs.get("merchant_backend.reconcile")


PAGE_SIZE = 100
OVERLAP_SECONDS = 300
RETENTION_SECONDS = 30 * 86400


def default_holder() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}"


def parse_since(text: str) -> int:
    """``--since``: unix seconds, or an ISO 8601 date/time (UTC unless it says otherwise)."""
    text = text.strip()
    seconds = parse_ascii_int(text)
    if seconds is not None:
        return seconds
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
        except (EventRejected, orjson.JSONEncodeError) as exc:
            reason = exc.reason if isinstance(exc, EventRejected) else "not_an_event"
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
        at = clock.now()
        state = take_lease(conn, merchant_id, env, owner, who, at)
        run = plan_run(state, since, at)
        state.run = run
        save_state(conn, merchant_id, env, state)
    try:
        summary = _run(rt, sc, merchant_id, env, state, run, owner, on_page)
    finally:
        try:
            with db.write(rt.engine) as conn:
                release_lease(conn, merchant_id, env, owner)
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
            check_still_ours(conn, merchant_id, env, owner)
            # One event the database refuses fails alone (counted as rejected, and logged);
            # it must not stop the run at this page for ever.
            new, refused = inbox.insert_isolated(conn, page.keep, clock.now())
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
                state.lease.until = clock.now() + LEASE_SECONDS
            save_state(conn, merchant_id, env, state)
        if new:
            rt.inbox_bell.ring()  # committed: this process's worker takes them now
        if on_page is not None:
            on_page(run)
        if not has_more or not events:
            break
    summary = summary_of(merchant_id, env, run, finished=True)
    with db.write(rt.engine) as conn:
        check_still_ours(conn, merchant_id, env, owner)
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
