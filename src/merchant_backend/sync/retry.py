"""When to try a failed event again: exponential backoff with jitter. Pure."""

from __future__ import annotations

import random


def retry_delay(
    attempts: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait after the ``attempts``-th failure (1, 2, …): ``base**attempts``, capped,
    then a random point in its upper half ("equal jitter": never less than half the backoff).

    Jitter spreads retries of many events that failed together (e.g. a database blip) so they
    do not come back as one wave.
    """
    try:
        ceiling = min(cap, base ** max(attempts, 1))
    except OverflowError:  # a float power past ~1e308 raises instead of giving inf
        ceiling = cap
    return (rng or random).uniform(ceiling / 2, ceiling)


def gives_up(attempts: int, max_attempts: int) -> bool:
    return attempts >= max_attempts
