"""When to try a failed event again: exponential backoff with full jitter. Pure."""

from __future__ import annotations

import random


def retry_delay(
    attempts: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait after the ``attempts``-th failure (1, 2, …).

    Jitter spreads retries of many events that failed together (e.g. a database blip) so they
    do not come back as one wave.
    """
    ceiling = min(cap, base ** max(attempts, 1))
    return (rng or random).uniform(ceiling / 2, ceiling)


def gives_up(attempts: int, max_attempts: int) -> bool:
    return attempts >= max_attempts
