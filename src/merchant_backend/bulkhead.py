"""Bulkheads: work that waits on something slow gets a bounded room of its own.

The hazard: a route that calls Stripe blocks a thread for as long as Stripe takes (timeout ×
tries). Run in the thread pool that every plain route shares, 40 such calls from one merchant
against a Stripe that does not answer fill the pool, and every other merchant's reads, the
sign-in page and the rest queue behind them.

So such work is admitted only while there is room, per key (a merchant) and in all:
- admission never waits: past either bound the request is refused at once with ``Busy``
  (429 and ``Retry-After``), so a flood from one merchant is turned away instead of queued
  in front of another merchant's request;
- admitted work runs on threads of its own (an anyio ``CapacityLimiter`` sized to the total
  bound), never taking a token of the shared default limiter that reads, sign-in and webhooks
  use.

Admission counts are per process. The slot is held until the thread has finished, even when
the client has gone away: the thread is still talking to Stripe, and that is what is bounded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread

from merchant_backend import metrics
from merchant_backend.errors import Busy

T = TypeVar("T")


class Bulkhead:
    def __init__(self, name: str, *, total: int, per_key: int, retry_after: int = 2) -> None:
        if total < 1 or per_key < 1:
            raise ValueError("a bulkhead needs room for at least one")
        self.name = name
        self.total = total
        self.per_key = min(per_key, total)
        self.retry_after = retry_after
        # Admission below guarantees that at most `total` run at once, so this never queues.
        self._limiter = anyio.CapacityLimiter(total)
        self._lock = threading.Lock()
        self._by_key: dict[str, int] = {}
        self._in_use = 0

    def in_use(self, key: str | None = None) -> int:
        with self._lock:
            return self._in_use if key is None else self._by_key.get(key, 0)

    def _admit(self, key: str) -> None:
        with self._lock:
            held = self._by_key.get(key, 0)
            if held >= self.per_key:
                scope = "per_key"
            elif self._in_use >= self.total:
                scope = "total"
            else:
                self._by_key[key] = held + 1
                self._in_use += 1
                metrics.BULKHEAD_IN_USE.labels(self.name).set(self._in_use)
                return
        metrics.BULKHEAD_REFUSALS.labels(self.name, scope).inc()
        if scope == "per_key":
            message = (
                f"{self.per_key} requests of this merchant are already waiting on Stripe: "
                f"try again in {self.retry_after} s"
            )
        else:
            message = (
                f"{self.total} requests are already waiting on Stripe: "
                f"try again in {self.retry_after} s"
            )
        raise Busy(message, retry_after=self.retry_after)

    def _release(self, key: str) -> None:
        with self._lock:
            held = self._by_key.get(key, 0) - 1
            if held > 0:
                self._by_key[key] = held
            else:
                self._by_key.pop(key, None)
            self._in_use -= 1
            metrics.BULKHEAD_IN_USE.labels(self.name).set(self._in_use)

    async def run(self, key: str, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` on the bulkhead's threads if there is room for ``key``; ``Busy``
        otherwise, at once."""
        self._admit(key)
        try:
            return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)
        finally:
            self._release(key)
