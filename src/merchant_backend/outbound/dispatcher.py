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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from merchant_backend import clock, logs, metrics
from merchant_backend.crypto import DecryptionError
from merchant_backend.outbound import http, retry, signing, ssrf
from merchant_backend.runtime import Runtime
from merchant_backend.store import db, outbox
from merchant_backend.store import destinations as destination_store

log = logs.get("merchant_backend.dispatcher")


def new_dispatcher_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class Dispatcher:
    runtime: Runtime
    dispatcher_id: str = ""
    resolve: ssrf.Resolver = ssrf.system_resolver
    _inflight: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.dispatcher_id = self.dispatcher_id or new_dispatcher_id()
        s = self.runtime.settings
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Condition(self._lock)
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
        """Claim what is due (within the free slots) and start sending it; returns how many."""
        s = self.runtime.settings
        at = clock.now()
        with self._lock:
            full = [d for d in self._inflight if self._free(d) == 0]
            if sum(self._inflight.values()) >= s.outbound_concurrency:
                return 0
        to_send: list[outbox.ClaimedDelivery] = []
        with db.write(self.runtime.engine) as conn:
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
                to_send.extend(claimed)
        # Sent only once the claim has committed: a rolled-back claim sends nothing.
        for item in to_send:
            self._pool.submit(self._deliver_and_release, item)
        return len(to_send)

    # --- sending ---

    def _deliver_and_release(self, item: outbox.ClaimedDelivery) -> None:
        try:
            self.deliver(item)
        except Exception as exc:  # the database failed: the lease runs out and it comes back
            log.error(
                "delivery not recorded",
                delivery=item.id,
                error=f"{type(exc).__name__}: {exc}"[:300],
            )
        finally:
            with self._lock:
                self._inflight[item.destination_id] -= 1
                if self._inflight[item.destination_id] <= 0:
                    del self._inflight[item.destination_id]
                self._idle.notify_all()
            self._wake.set()

    def attempt(self, item: outbox.ClaimedDelivery) -> outbox.Attempt:
        s = self.runtime.settings
        try:
            target = ssrf.check(
                item.url, item.env, allow_private=s.outbound_allow_private, resolve=self.resolve
            )
        except ssrf.UnsafeDestination as exc:
            return outbox.Attempt(None, 0.0, None, f"refused: {exc}")
        try:
            ring = self.runtime.keys.for_token(item.secret_enc)
            secret = destination_store.secret_of(
                ring, item.destination_id, item.destination_merchant_id, item.env, item.secret_enc
            )
        except DecryptionError as exc:
            return outbox.Attempt(None, 0.0, None, f"signing secret unreadable: {exc}")
        body = item.payload.encode()
        headers = signing.headers(secret, item.message_id, int(clock.now()), body)
        answer = http.post(target, body, headers, timeout=s.outbound_timeout)
        return outbox.Attempt(answer.status_code, answer.duration, answer.excerpt, answer.error)

    def deliver(self, item: outbox.ClaimedDelivery) -> str:
        """Send one claimed delivery and record the outcome: delivered, retrying or failed."""
        s = self.runtime.settings
        result = self.attempt(item)
        at = clock.now()
        disabled = False
        with db.write(self.runtime.engine) as conn:
            if result.ok:
                outbox.record_delivered(conn, item, self.dispatcher_id, result, at)
                outcome = "delivered"
            else:
                when = retry.next_attempt(
                    first_attempt_at=item.first_attempt_at,
                    at=at,
                    attempts=item.attempts,
                    base=s.outbound_retry_base,
                    window=s.outbound_retry_window,
                    rand=random.random(),
                )
                outbox.record_failed(conn, item, self.dispatcher_id, result, at, retry_at=when)
                outcome = "retrying" if when is not None else "failed"
                why = result.error or f"HTTP {result.status_code}"
                disabled = destination_store.record_failure(
                    conn,
                    item.destination_id,
                    at,
                    disable_after=s.outbound_disable_after,
                    reason=(
                        f"every delivery failed for {s.outbound_disable_after / 86400:g} days;"
                        f" last: {why}"
                    )[:500],
                )
        metrics.OUTBOUND_DELIVERIES.labels(outcome).inc()
        if outcome == "delivered":
            metrics.OUTBOUND_LAG.observe(max(0.0, at - item.message_created_at))
        else:
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
        return outcome

    # --- running ---

    def in_flight(self) -> int:
        with self._lock:
            return sum(self._inflight.values())

    def wait_idle(self, timeout: float = 30.0) -> bool:
        with self._lock:
            return self._idle.wait_for(lambda: sum(self._inflight.values()) == 0, timeout=timeout)

    def drain(self, max_rounds: int = 100_000) -> int:
        """Send everything due now and wait for it (tests, benchmarks)."""
        total = 0
        for _ in range(max_rounds):
            n = self.run_once()
            total += n
            if n == 0:
                if not self.wait_idle():
                    break
                if self.run_once() == 0 and self.in_flight() == 0:
                    break
        return total

    def run_forever(self) -> None:
        log.info("dispatcher started", dispatcher_id=self.dispatcher_id)
        outbox.COMMITTED.subscribe(self._wake.set)
        try:
            while not self._stop.is_set():
                self._wake.clear()
                try:
                    started = self.run_once()
                except Exception as exc:  # database unreachable: wait and try again
                    log.error("dispatch round failed", error=f"{type(exc).__name__}: {exc}"[:300])
                    started = 0
                    self._stop.wait(min(5.0, self.runtime.settings.outbound_poll_interval * 10))
                if started:
                    continue
                self._wake.wait(self.runtime.settings.outbound_poll_interval)
        finally:
            outbox.COMMITTED.unsubscribe(self._wake.set)
            log.info("dispatcher stopped", dispatcher_id=self.dispatcher_id)

    def stop(self, wait: bool = True) -> None:
        self._stop.set()
        self._wake.set()
        with contextlib.suppress(Exception):
            self._pool.shutdown(wait=wait, cancel_futures=True)

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, name="outbound-dispatcher", daemon=True)
        thread.start()
        return thread
