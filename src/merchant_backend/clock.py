"""The one place that reads the time, so tests can move it."""

from __future__ import annotations

import time


def now() -> float:
    return time.time()
