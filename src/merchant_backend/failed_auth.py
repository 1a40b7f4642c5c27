"""Guessing is slow and seen: failed authentications are counted, limited, logged.

Every place that checks a credential (the API's bearer token, the web sign-in form, which
both take merchant and admin tokens) asks this module first and tells it about each failure:

1. ``check(attempt)`` before the credential is looked at: an address over its limit is
   answered 429 with ``Retry-After`` whatever it sends, a right token included. Otherwise the
   answer itself would tell a guesser when a guess was right, at full speed.
2. ``failed(attempt)`` after a wrong credential: the failure is counted per client address and
   per target (the merchant named in the path, the admin routes, the sign-in form), logged with
   the client address (never the token) and counted in ``/metrics``; it raises ``RateLimited``
   when this failure went past either limit, so the caller answers 429 instead of 401.

The per-target limit turns failures into 429s but never refuses a right credential: many
addresses guessing at one merchant must not lock that merchant out of its own API. (Tokens
carry 256 random bits and the admin token at least 32 characters, so this limit is about
seeing and slowing a distributed guess, not about keeping one out.)

Counts live where ``MERCHANT_BACKEND_RATE_LIMIT_STORAGE`` says: ``memory://`` for one process,
``redis://host:port`` when several processes serve. A storage that cannot be reached fails open
(the request goes on to the credential check) and says so in the log: losing the limit for a
moment is better than locking every merchant out of its money.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import limits
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from merchant_backend import clock, logs, metrics
from merchant_backend.errors import RateLimited
from merchant_backend.settings import Settings

Channel = Literal["api", "web"]


def log() -> Any:
    # Looked up per use, so a test's capture (and a replaced stderr) sees it.
    return logs.get("merchant_backend.auth")


@dataclass(frozen=True)
class Attempt:
    """One try at authenticating: over which channel, from where, at what."""

    channel: Channel
    address: str
    # "merchant:mer_…", "admin", "api" (no merchant in the path) or "sign-in".
    target: str


class FailedAuthLimiter:
    def __init__(self, storage_uri: str, per_address: str, per_target: str) -> None:
        self._storage = storage_from_string(storage_uri)
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._per_address = limits.parse(per_address)
        self._per_target = limits.parse(per_target)

    @classmethod
    def from_settings(cls, settings: Settings) -> FailedAuthLimiter:
        return cls(
            settings.rate_limit_storage,
            settings.auth_failures_per_address,
            settings.auth_failures_per_target,
        )

    def _retry_after(self, item: limits.RateLimitItem, *identifiers: str) -> int:
        stats = self._limiter.get_window_stats(item, *identifiers)
        return max(1, math.ceil(stats.reset_time - clock.now()))

    def _refusal(self, attempt: Attempt, retry_after: int) -> RateLimited:
        metrics.AUTH_FAILURES.labels(attempt.channel, "limited").inc()
        return RateLimited(
            f"too many failed sign-ins from this address or at this target: try again in "
            f"{retry_after} s",
            retry_after=retry_after,
        )

    def check(self, attempt: Attempt) -> None:
        """Raise ``RateLimited`` if the attempt's address is over its limit of failures."""
        try:
            allowed = self._limiter.test(self._per_address, "address", attempt.address)
            if allowed:
                return
            retry_after = self._retry_after(self._per_address, "address", attempt.address)
        except Exception as exc:  # the storage is away: fail open, loudly
            log().error("auth rate-limit storage unavailable", error=type(exc).__name__)
            return
        raise self._refusal(attempt, retry_after)

    def failed(self, attempt: Attempt) -> None:
        """Count a wrong credential; raise ``RateLimited`` if it went past a limit."""
        try:
            address_ok = self._limiter.hit(self._per_address, "address", attempt.address)
            target_ok = self._limiter.hit(self._per_target, "target", attempt.target)
        except Exception as exc:
            log().error("auth rate-limit storage unavailable", error=type(exc).__name__)
            address_ok = target_ok = True
        if address_ok and target_ok:
            metrics.AUTH_FAILURES.labels(attempt.channel, "refused").inc()
            log().warning(
                "authentication failed",
                channel=attempt.channel,
                client=attempt.address,
                target=attempt.target,
            )
            return
        if not address_ok:
            retry_after = self._retry_after(self._per_address, "address", attempt.address)
        else:
            retry_after = self._retry_after(self._per_target, "target", attempt.target)
        log().warning(
            "authentication failed, rate limited",
            channel=attempt.channel,
            client=attempt.address,
            target=attempt.target,
            limit="address" if not address_ok else "target",
            retry_after=retry_after,
        )
        raise self._refusal(attempt, retry_after)

    def reset(self) -> None:
        """Forget every count (tests, and an operator who lifted a block by hand)."""
        self._storage.reset()
