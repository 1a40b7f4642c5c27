"""One benchmark worker process: connect, say ready, wait for "go", drain the inbox, report.

``python -m bench.worker_proc`` with the service's MERCHANT_BACKEND_* environment. Prints one
JSON line: events handled and the (system-wide monotonic) start and end times.
"""

from __future__ import annotations

import json
import sys
import time

from merchant_backend.runtime import Runtime
from merchant_backend.settings import Settings
from merchant_backend.sync.worker import Worker


def main() -> None:
    rt = Runtime(Settings())
    worker = Worker(rt.engine, rt.settings)
    worker.backlog()  # connect (and warm the pool) before the clock starts
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.monotonic()
    handled = worker.drain()
    ended = time.monotonic()
    print(json.dumps({"handled": handled, "start": started, "end": ended}), flush=True)
    rt.close()


if __name__ == "__main__":
    main()
