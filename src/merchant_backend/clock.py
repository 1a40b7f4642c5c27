"""The one place that reads the time, so tests can set it.

Always call it through the module, ``from merchant_backend import clock; clock.now()``, never
``from merchant_backend.clock import now``: a test then sets the time once (the ``clock``
fixture replaces ``clock.now``) and every caller sees it.
"""

from __future__ import annotations

import time


def now() -> float:
    return time.time()
