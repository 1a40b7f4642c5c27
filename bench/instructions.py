"""Instructions per delivery and per applied event, counted by valgrind: a ruler that does not
move with the machine.

The req/s of the ingest bench move by ±30 % between VMs of the same kind, and by ±10 % between
rounds on one (docs/benchmarks.md), so a change worth a few per cent cannot be seen there.
Callgrind counts the instructions a process executes in user space, in every thread: the same
count for the same code and inputs on any machine and under any load (repeat runs here agree to
within 0.1 %). Each case runs in-process — the ASGI app called directly, no HTTP server, no
socket — twice, with N and 3 N requests; the difference over 2 N is one request's cost without
start-up, imports and set-up. Kernel work (fsync, socket I/O) is not counted: this measures CPU
in our process, which is what limits ``serve`` (the ingest figures' analysis).

Cases: the bare endpoint (``bench/bare.py``), the docs-style handler (``bench/docs_handler.py``,
one commit per request), ``serve --no-worker``'s app as its processes build it
(``asgi.factory``: gc.freeze and all) with 32 requests in flight (the wrk runs' connections), and
the worker applying the same kind of events in batches of 32 (about what the wake-ups give
``serve``). ``python -m bench.run --only instructions``; needs ``valgrind``
(Debian's package), else it says so and measures nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import events

N = 300  # requests of the small run; the large one sends 3 N
IN_FLIGHT = 32
WORKER_BATCH = 32

Message = dict[str, Any]
App = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]


def available() -> bool:
    return shutil.which("valgrind") is not None


@dataclass(frozen=True)
class Count:
    label: str
    per_unit: float  # instructions per request or event
    unit: str


# --- inside valgrind: one case, N requests -----------------------------------------------------


def _read_bodies(path: Path, n: int) -> list[tuple[bytes, bytes]]:
    data = path.read_bytes()
    out: list[tuple[bytes, bytes]] = []
    at = 0
    while len(out) < n:
        size, header_size = struct.unpack_from("<II", data, at)
        at += 8
        out.append((data[at : at + size], data[at + size : at + size + header_size]))
        at += size + header_size
    return out


async def _drive(app: App, path: str, bodies: list[tuple[bytes, bytes]]) -> None:
    """Lifespan up, every body POSTed (``IN_FLIGHT`` at a time), lifespan down."""
    lifespan: asyncio.Queue[Message] = asyncio.Queue()
    started = asyncio.get_running_loop().create_future()
    stopped = asyncio.get_running_loop().create_future()

    async def life_send(message: Message) -> None:
        future = started if message["type"].startswith("lifespan.startup") else stopped
        if not future.done():
            future.set_result(message["type"])

    task = asyncio.ensure_future(app({"type": "lifespan"}, lifespan.get, life_send))
    await lifespan.put({"type": "lifespan.startup"})
    assert await started == "lifespan.startup.complete"

    async def post(body: bytes, header: bytes) -> None:
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if sent:
                await asyncio.Event().wait()  # no disconnect while the answer is written
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        status = []

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"127.0.0.1"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"stripe-signature", header),
            ],
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
        }
        await app(scope, receive, send)
        if status != [200]:
            raise RuntimeError(f"{path} answered {status}")

    for i in range(0, len(bodies), IN_FLIGHT):
        await asyncio.gather(*(post(b, h) for b, h in bodies[i : i + IN_FLIGHT]))
    await lifespan.put({"type": "lifespan.shutdown"})
    await stopped
    await task


def _inner(case: str, n: int, bodies_file: Path, path: str, at: float) -> None:
    if case == "worker":
        from merchant_backend.runtime import Runtime
        from merchant_backend.settings import Settings
        from merchant_backend.sync.worker import Worker

        settings = Settings(worker_batch_size=WORKER_BATCH)
        rt = Runtime(settings)
        worker = Worker(rt.engine, settings)
        gc.freeze()  # as in serve, whose process the worker shares (asgi.factory)
        applied = worker.drain()
        rt.close()
        if applied != n:
            raise RuntimeError(f"the worker applied {applied} of {n}")
        return
    bodies = _read_bodies(bodies_file, n)
    app: Any
    if case == "bare":
        from bench.bare import app
    elif case == "docs":
        from bench.docs_handler import app
    else:
        # serve --no-worker's app, as its processes build it (gc.freeze and all).
        from merchant_backend.asgi import factory
        from merchant_backend.settings import SERVE_NO_DISPATCHER_ENV, SERVE_NO_WORKER_ENV

        os.environ[SERVE_NO_WORKER_ENV] = os.environ[SERVE_NO_DISPATCHER_ENV] = "1"
        app = factory()
        # The clock stands at the signing time: under valgrind a run is ~50 times slower, and
        # the secret cache's 1 s would expire every few requests (at full speed, once in
        # thousands), which made the count vary by 3 % between runs.
        from merchant_backend import clock

        clock.now = lambda: at
    import uvloop

    uvloop.run(_drive(app, path, bodies))


# --- outside: set-up, the two runs, the difference ---------------------------------------------


def _instructions(args: list[str], env: dict[str, str], out: Path) -> int:
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "-q",
            f"--callgrind-out-file={out}",
            sys.executable,
            "-m",
            "bench.instructions",
            *args,
        ],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    found = re.search(rb"^(?:totals|summary): (\d+)", out.read_bytes(), re.M)
    if found is None:
        raise RuntimeError(f"no instruction count in {out}")
    return int(found.group(1))


def _write_bodies(path: Path, bodies: list[tuple[bytes, str]]) -> None:
    with path.open("wb") as f:
        for body, header in bodies:
            f.write(struct.pack("<II", len(body), len(header)))
            f.write(body)
            f.write(header.encode())


CASES = ("bare", "docs", "webhook", "worker")


def measure(workdir: Path, only: tuple[str, ...] = CASES) -> list[Count]:
    """Each case at N and 3 N; one unit's instructions each (see the module's docstring)."""
    from bench.ingest import ACCOUNT, SIGNING_SECRET, prepare_service
    from bench.processing import fill_inbox

    # The same hash seed every run: dict and set layouts, and so the counts, repeat.
    common = {"PYTHONHASHSEED": "0", "MERCHANT_BACKEND_LOG_LEVEL": "WARNING"}
    counts: list[Count] = []
    per_case: dict[str, dict[int, int]] = {}
    builder = events.Builder("ins", account=ACCOUNT)
    for n in (N, 3 * N):
        run_dir = workdir / f"n{n}"
        run_dir.mkdir()
        evts = events.take(builder, ACCOUNT, n, int(time.time()) - 86400)
        bodies_file = run_dir / "bodies"
        db_url = f"sqlite:///{run_dir / 'serve.db'}"
        serve_env, merchant_id = prepare_service(run_dir, db_url)
        docs_env = {
            **os.environ,
            **common,
            "STRIPE_WEBHOOK_SECRET": SIGNING_SECRET,
            "DOCS_HANDLER_DB": str(run_dir / "docs.db"),
        }
        worker_url = f"sqlite:///{run_dir / 'worker.db'}"
        fill_inbox(worker_url, n, seed=n)
        worker_env = {**serve_env, **common, "MERCHANT_BACKEND_DATABASE_URL": worker_url}
        cases = {
            "bare": ({**os.environ, **common}, "/webhook"),
            "docs": (docs_env, "/webhook"),
            "webhook": ({**serve_env, **common}, f"/webhooks/stripe/{merchant_id}/stage"),
            "worker": (worker_env, ""),
        }
        for case, (env, path) in cases.items():
            if case not in only:
                continue
            # Signed just before each run: a signature is accepted for 300 s.
            at = int(time.time())
            _write_bodies(bodies_file, events.signed_bodies(evts, SIGNING_SECRET, at))
            args = ["--case", case, "--n", str(n), "--bodies", str(bodies_file), "--path", path]
            args += ["--at", str(at)]
            out = run_dir / f"{case}.callgrind"
            per_case.setdefault(case, {})[n] = _instructions(args, env, out)
    labels = {
        "bare": ("bare ASGI endpoint", "request"),
        "docs": ("docs-style handler", "request"),
        "webhook": ("our webhook endpoint (checks, group commit)", "delivery"),
        "worker": ("the worker applying", "event"),
    }
    for case, by_n in per_case.items():
        label, unit = labels[case]
        counts.append(Count(label, (by_n[3 * N] - by_n[N]) / (2 * N), unit))
    return counts


def report(counts: list[Count]) -> None:
    by = {c.label: c for c in counts}
    for c in counts:
        print(f"  {c.label:<46} {c.per_unit:>12,.0f} instructions per {c.unit}")
    if len(counts) < len(CASES):
        return  # a change's own cases only (--cases): the ratios need all four
    bare = by["bare ASGI endpoint"].per_unit
    docs = by["docs-style handler"].per_unit
    ours = by["our webhook endpoint (checks, group commit)"].per_unit
    apply = by["the worker applying"].per_unit
    print(f"  bare / webhook endpoint (in-process, no HTTP)  {bare / ours:12.3f}")
    print(f"  docs handler / (webhook + worker)              {docs / (ours + apply):12.2f}")
    print(
        "  (in-process counts: no HTTP server, no kernel; they move only when the code does,"
        " so compare them between commits, not with the req/s ratios)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", choices=CASES, help="(inside valgrind) the case to run")
    parser.add_argument(
        "--cases",
        nargs="+",
        choices=CASES,
        default=CASES,
        help="count only these, e.g. --cases webhook worker to judge a change in minutes",
    )
    parser.add_argument("--n", type=int)
    parser.add_argument("--bodies", type=Path)
    parser.add_argument("--path", default="")
    parser.add_argument("--at", type=float, default=0.0, help="when the bodies were signed")
    args = parser.parse_args()
    if args.case:
        _inner(args.case, args.n, args.bodies, args.path, args.at)
        return
    if not available():
        print("instructions: skipped (valgrind is not installed: apt-get install valgrind)")
        return
    with tempfile.TemporaryDirectory(prefix="mb-instructions-") as tmp:
        report(measure(Path(tmp), tuple(args.cases)))


if __name__ == "__main__":
    main()
