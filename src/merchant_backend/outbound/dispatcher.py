"""The dispatcher: lease due deliveries from the outbox, send them signed, record the outcome.

Runs as a thread inside ``serve`` (unless ``--no-dispatcher``) or in ``merchant-backend
dispatcher`` processes; any number share the work on PostgreSQL (leases with SKIP LOCKED).

- At least once: a delivery is leased before it is sent and settled after; a dispatcher that
  dies mid-send leaves the lease to run out, and the delivery is sent again (same
  ``webhook-id``, so the receiver can tell).
- One slow receiver hurts nobody else: at most ``outbound_destination_concurrency``
  deliveries per destination and ``outbound_concurrency`` in all are in flight in a process,
  and work is claimed destination by destination, so a hanging destination holds only its
  own slots while the others keep theirs.
- Each attempt checks the URL and its addresses again (``ssrf.check``) and connects to the
  address it checked.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import Connection

from merchant_backend import clock, logs, metrics
from merchant_backend.crypto import DecryptionError
from merchant_backend.outbound import failures, http, retry, signing, ssrf
from merchant_backend.runtime import Runtime
from merchant_backend.store import db, outbox
from merchant_backend.store import destinations as destination_store

log = logs.get("merchant_backend.dispatcher")
_NO_ATTEMPT = outbox.Attempt(None, 0.0, None, None)


def new_dispatcher_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Dispatcher:
    runtime: Runtime
    dispatcher_id: str = ""
    resolve: ssrf.Resolver | None = None
    _inflight: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.dispatcher_id = self.dispatcher_id or new_dispatcher_id()
        s = self.runtime.settings
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._finished: list[tuple[outbox.ClaimedDelivery, outbox.Attempt, float]] = []
        self._pool = ThreadPoolExecutor(
            max_workers=s.outbound_concurrency, thread_name_prefix="outbound-delivery"
        )

    # --- claiming ---

    def _free(self, destination_id: str) -> int:
        s = self.runtime.settings
        total_free = s.outbound_concurrency - sum(self._inflight.values())
        own_free = s.outbound_destination_concurrency - self._inflight[destination_id]
        return max(0, min(total_free, own_free))

    def run_once(self) -> int:
        """Record the outcomes that came in and claim what is due (within the free slots), in
        one transaction; then start sending. Returns how many it recorded or started."""
        with self._lock:
            batch, self._finished = self._finished, []
        to_send: list[outbox.ClaimedDelivery] = []
        released = False
        try:
            with db.write(self.runtime.engine) as conn:
                outcomes = self._record(conn, batch)
                self._release(batch)  # their slots are free for this claim already
                released = True
                self._claim(conn, clock.now(), into=to_send)
        except Exception:
            # Nothing of it committed: the leases run out and those rows come back.
            if not released:
                self._release(batch)
            self._release([(item, _NO_ATTEMPT, 0.0) for item in to_send])
            raise
        for outcome, disabled in outcomes:
            self._observe(outcome, disabled)
        # Sent only once the claim has committed: a rolled-back claim sends nothing.
        for claimed in to_send:
            self._pool.submit(self._send, claimed)
        return len(batch) + len(to_send)

    def _release(self, batch: list[tuple[outbox.ClaimedDelivery, outbox.Attempt, float]]) -> None:
        with self._lock:
            for item, _, _ in batch:
                self._inflight[item.destination_id] -= 1
                if self._inflight[item.destination_id] <= 0:
                    del self._inflight[item.destination_id]

    def _claim(self, conn: Connection, at: float, *, into: list[outbox.ClaimedDelivery]) -> None:
        """Destination by destination, each up to its free slots: a destination that holds
        its slots (hanging) is skipped without keeping the others waiting."""
        s = self.runtime.settings
        with self._lock:
            full = [d for d, n in self._inflight.items() if n and self._free(d) == 0]
        for destination_id in outbox.destinations_with_due_work(conn, at, exclude=full):
            with self._lock:
                free = self._free(destination_id)
            if free == 0:
                continue
            claimed = outbox.claim(
                conn,
                self.dispatcher_id,
                destination_id,
                at=at,
                lease_seconds=max(s.outbound_lease_seconds, s.outbound_timeout + 1),
                limit=free,
            )
            if not claimed:
                continue  # due, but each behind an older delivery of its object
            with self._lock:
                self._inflight[destination_id] += len(claimed)
            into.extend(claimed)

    # --- sending ---

    def _send(self, item: outbox.ClaimedDelivery) -> None:
        """In a pool thread: the HTTP attempt only. Its outcome is recorded by the loop,
        together with the others that finished meanwhile (one transaction for many)."""
        try:
            result = self.attempt(item)
        except Exception as exc:  # a bug, not the receiver: record it as a failed attempt
            result = outbox.Attempt(None, 0.0, None, logs.error_text(exc))
        with self._lock:
            self._finished.append((item, result, clock.now()))
        self._wake.set()

    def attempt(self, item: outbox.ClaimedDelivery) -> outbox.Attempt:
        s = self.runtime.settings
        try:
            target = ssrf.check(
                item.url, item.env, allow_private=s.outbound_allow_private, resolve=self.resolve
            )
        except ssrf.UnsafeDestination as exc:
            return outbox.Attempt(None, 0.0, None, failures.refused(exc))
        try:
            ring = self.runtime.keys.for_token(item.secret_enc)
            secret = destination_store.secret_of(
                ring, item.destination_id, item.destination_merchant_id, item.env, item.secret_enc
            )
        except DecryptionError as exc:
            return outbox.Attempt(None, 0.0, None, failures.secret_unreadable(exc))
        body = item.payload.encode()
        headers = signing.headers(secret, item.message_id, int(clock.now()), body)
        answer = http.post(target, body, headers, timeout=s.outbound_timeout)
        return outbox.Attempt(answer.status_code, answer.duration, answer.excerpt, answer.error)

    def _record(
        self,
        conn: Connection,
        batch: Sequence[tuple[outbox.ClaimedDelivery, outbox.Attempt, float]],
    ) -> list[tuple[outbox.Outcome, bool]]:
        """Write the outcomes of a batch of attempts; returns each with whether it disabled
        its destination (every delivery failed for the disable period)."""
        s = self.runtime.settings
        outcomes: list[outbox.Outcome] = []
        for item, result, at in batch:
            if result.ok:
                outcomes.append(outbox.Outcome(item, result, at, "delivered"))
                continue
            when = retry.next_attempt(
                first_attempt_at=item.first_attempt_at,
                at=at,
                attempts=item.attempts,
                base=s.outbound_retry_base,
                window=s.outbound_retry_window,
                rand=random.random(),
            )
            state = "retrying" if when is not None else "failed"
            outcomes.append(outbox.Outcome(item, result, at, state, when))
        outbox.record(conn, self.dispatcher_id, outcomes)
        disabled: set[str] = set()
        # A success in this batch clears the streak (record wrote it); only failures after
        # the last success of the batch count.
        last: dict[str, outbox.Outcome] = {}
        for o in outcomes:
            last[o.item.destination_id] = o
        for dest, o in sorted(last.items()):
            if o.state == "delivered":
                continue
            why = o.attempt.error or f"HTTP {o.attempt.status_code}"
            days = s.outbound_disable_after / 86400
            if destination_store.record_failure(
                conn,
                dest,
                o.at,
                disable_after=s.outbound_disable_after,
                reason=failures.auto_disabled(days, why)[:500],
            ):
                disabled.add(dest)
        return [
            (o, o.item.destination_id in disabled and o is last[o.item.destination_id])
            for o in outcomes
        ]

    def _observe(self, o: outbox.Outcome, disabled: bool) -> None:
        item, result, at, outcome = o.item, o.attempt, o.at, o.state
        metrics.OUTBOUND_DELIVERIES.labels(outcome).inc()
        if outcome == "delivered":
            metrics.OUTBOUND_LAG.observe(max(0.0, at - item.message_created_at))
            return
        log.info(
            "delivery failed",
            destination=item.destination_id,
            message=item.message_id,
            attempt=item.attempts,
            outcome=outcome,
            status=result.status_code,
            error=(result.error or "")[:200],
        )
        if disabled:
            metrics.OUTBOUND_DISABLED.inc()
            log.warning("destination disabled", destination=item.destination_id)

    def deliver(self, item: outbox.ClaimedDelivery) -> str:
        """Send one claimed delivery now and record the outcome (``test``, tools)."""
        return self.deliver_with_result(item)[0]

    def deliver_with_result(self, item: outbox.ClaimedDelivery) -> tuple[str, outbox.Attempt]:
        result = self.attempt(item)
        with db.write(self.runtime.engine) as conn:
            ((outcome, disabled),) = self._record(conn, [(item, result, clock.now())])
        self._observe(outcome, disabled)
        return outcome.state, result

    # --- running ---

    def _record_only(self) -> None:
        with self._lock:
            batch, self._finished = self._finished, []
        if batch:
            with db.write(self.runtime.engine) as conn:
                outcomes = self._record(conn, batch)
            for outcome, disabled in outcomes:
                self._observe(outcome, disabled)
            self._release(batch)

    def in_flight(self) -> int:
        with self._lock:
            return sum(self._inflight.values())

    def drain(self, max_rounds: int = 1_000_000) -> int:
        """Send everything due now and wait for it (tests, benchmarks)."""
        total = 0
        for _ in range(max_rounds):
            self._wake.clear()
            n = self.run_once()
            total += n
            if n == 0 and self.in_flight() == 0:
                break
            if n == 0:
                self._wake.wait(1.0)
        return total

    def run_forever(self) -> None:
        log.info("dispatcher started", dispatcher_id=self.dispatcher_id)
        outbox.DUE.subscribe(self._wake.set)
        try:
            while not self._stop.is_set():
                self._wake.clear()
                try:
                    started = self.run_once()
                except Exception as exc:  # database unreachable: wait and try again
                    log.error("dispatch round failed", error=logs.error_text(exc))
                    started = 0
                    self._stop.wait(min(5.0, self.runtime.settings.outbound_poll_interval * 10))
                if started:
                    continue
                self._wake.wait(self.runtime.settings.outbound_poll_interval)
        finally:
            outbox.DUE.unsubscribe(self._wake.set)
            log.info("dispatcher stopped", dispatcher_id=self.dispatcher_id)

    def stop(self, wait: bool = True) -> None:
        """Stop claiming; with ``wait``, let the attempts in flight finish and record them."""
        self._stop.set()
        self._wake.set()
        with contextlib.suppress(Exception):
            self._pool.shutdown(wait=wait, cancel_futures=True)
            if wait:
                self._record_only()

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, name="outbound-dispatcher", daemon=True)
        thread.start()
        return thread
