"""When a failed delivery is tried again, and when it is given up. Pure.

The first retry comes ``base`` seconds after the first failure, and each delay doubles, up
to six hours, each stretched by up to a fifth at random (jitter: destinations that failed
together do not all come back at the same instant). A delivery whose next try would fall
more than ``window`` seconds after its first attempt is given up: ``failed``, kept and
replayable. With the defaults (5 s, 3 days) that is about 22 attempts.
"""

from __future__ import annotations

MAX_DELAY = 6 * 3600.0
JITTER = 0.2


def delay(attempts: int, base: float, rand: float) -> float:
    """The wait after the ``attempts``-th failed try; ``rand`` in [0, 1)."""
    exponent = min(max(attempts - 1, 0), 40)
    return float(min(base * 2.0**exponent, max(MAX_DELAY, base)) * (1 + JITTER * rand))


def next_attempt(
    *, first_attempt_at: float, at: float, attempts: int, base: float, window: float, rand: float
) -> float | None:
    """When to try again, or None to give up."""
    when = at + delay(attempts, base, rand)
    return None if when - first_attempt_at > window else when
