"""Outbound notifications: how fast the dispatcher delivers, and the lag from change to delivery.

``python -m bench.outbound`` (or ``make bench BENCH_ARGS="--only outbound"``). A receiver runs
in its own process and answers 200 at once. Two figures per database:

- *throughput*: N changes already in the outbox for one destination (and for four), sent by
  one in-process dispatcher with the default concurrency; messages delivered per second;
- *lag*: changes committed at a steady rate while the dispatcher runs; p50/p99 of the time
  from a change's commit to its delivery being recorded (``delivered_at - created_at``).

Every message is checked delivered afterwards. Figures are shown, never enforced.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path
from statistics import quantiles

from pydantic import SecretStr
from sqlalchemy import func, select

from bench import pg
from bench.procs import Children, free_port
from merchant_backend.crypto import generate_key
from merchant_backend.outbound import signing
from merchant_backend.outbound.dispatcher import Dispatcher
from merchant_backend.runtime import Runtime
from merchant_backend.settings import Settings
from merchant_backend.store import db, objects
from merchant_backend.store import destinations as destination_store
from merchant_backend.store import merchants as merchant_store
from merchant_backend.store.migrate import upgrade
from merchant_backend.store.rows import Snapshot
from merchant_backend.store.schema import outbound_deliveries, outbound_messages
from merchant_backend.sync.handlers import snapshot_of

RECEIVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

class S(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def _snapshots(start: int, count: int) -> list[Snapshot]:
    return [
        snapshot_of(
            "customer",
            {
                "id": f"cus_{n:08d}",
                "object": "customer",
                "email": f"c{n}@example.com",
                "created": 1_760_000_000,
            },
            event_id=f"evt_{n:08d}",
            event_type="customer.updated",
            event_created=1_760_000_000,
        )
        for n in range(start, start + count)
    ]


def _runtime(url: str, tmp: Path) -> Runtime:
    settings = Settings(
        database_url=url,
        master_key=SecretStr(generate_key()),
        master_key_file=str(tmp / "unused.key"),
        outbound_allow_private=True,
        log_level="WARNING",
    )
    rt = Runtime(settings)
    upgrade(rt.engine)
    return rt


def _setup(rt: Runtime, receiver_url: str, destinations: int) -> str:
    with db.write(rt.engine) as conn:
        merchant, _ = merchant_store.create(conn, "Bench shop")
        for _ in range(destinations):
            destination_store.create(
                conn,
                rt.keys.get(),
                merchant_id=merchant.id,
                env="stage",
                url=receiver_url,
                description="bench",
                object_types=destination_store.OBJECT_TYPES,
                secret=signing.new_secret(),
            )
    return merchant.id


def _check_all_delivered(rt: Runtime) -> tuple[int, int]:
    with db.read(rt.engine) as conn:
        total = conn.execute(select(func.count()).select_from(outbound_deliveries)).scalar_one()
        done = conn.execute(
            select(func.count()).where(outbound_deliveries.c.state == "delivered")
        ).scalar_one()
    return int(done), int(total)


def throughput(url: str, tmp: Path, receiver_url: str, *, n: int, destinations: int) -> str:
    rt = _runtime(url, tmp)
    try:
        merchant_id = _setup(rt, receiver_url, destinations)
        for start in range(0, n, 1000):
            with db.write(rt.engine) as conn:
                objects.apply_snapshots(
                    conn, merchant_id, "stage", _snapshots(start, min(1000, n - start))
                )
        dispatcher = Dispatcher(rt)
        started = time.perf_counter()
        dispatcher.drain()
        seconds = time.perf_counter() - started
        dispatcher.stop()
        done, total = _check_all_delivered(rt)
        flag = "" if done == total else f"  NOT DELIVERED: {total - done}"
        return (
            f"{destinations} destination{'s' if destinations > 1 else ' '}: {total / seconds:7.0f} "
            f"deliveries/s ({total} in {seconds:.2f} s){flag}"
        )
    finally:
        rt.close()


def lag(url: str, tmp: Path, receiver_url: str, *, rate: float, seconds: float) -> str:
    rt = _runtime(url, tmp)
    try:
        merchant_id = _setup(rt, receiver_url, 1)
        dispatcher = Dispatcher(rt)
        thread = dispatcher.start_thread()
        count = int(rate * seconds)
        started = time.perf_counter()
        for n in range(count):
            with db.write(rt.engine) as conn:
                objects.apply_snapshots(conn, merchant_id, "stage", _snapshots(n, 1))
            pause = started + (n + 1) / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        deadline = time.monotonic() + 60
        while _check_all_delivered(rt)[0] < count and time.monotonic() < deadline:
            time.sleep(0.05)
        dispatcher.stop()
        thread.join(10)
        with db.read(rt.engine) as conn:
            lags = [
                r[0] - r[1]
                for r in conn.execute(
                    select(outbound_deliveries.c.delivered_at, outbound_messages.c.created_at)
                    .join(
                        outbound_messages,
                        outbound_messages.c.id == outbound_deliveries.c.message_id,
                    )
                    .where(outbound_deliveries.c.state == "delivered")
                )
            ]
        done, total = _check_all_delivered(rt)
        cuts = quantiles(lags, n=100) if len(lags) > 1 else [0.0] * 99
        flag = "" if done == total else f"  NOT DELIVERED: {total - done}"
        return (
            f"{rate:.0f} changes/s for {seconds:.0f} s: lag p50 {cuts[49] * 1000:6.1f} ms, "
            f"p99 {cuts[98] * 1000:6.1f} ms, max {max(lags) * 1000:6.1f} ms{flag}"
        )
    finally:
        rt.close()


def run(
    children: Children, tmp: Path, *, n: int, rate: float, seconds: float, use_pg: bool
) -> None:
    print(
        f"\n== Outbound: {n} queued changes to a local receiver process, then {rate:.0f}/s live =="
    )
    port = free_port()
    children.start("receiver", [sys.executable, "-c", RECEIVER, str(port)], env={}, cpus=None)
    receiver_url = f"http://127.0.0.1:{port}/hooks"
    _wait_listening(port)
    for label in ("SQLite", "PostgreSQL"):
        if label == "PostgreSQL" and not use_pg:
            continue
        for destinations in (1, 4):
            ctx: contextlib.AbstractContextManager[str] = (
                contextlib.nullcontext(f"sqlite:///{tmp / f'outbound-{destinations}.db'}")
                if label == "SQLite"
                else pg.database()
            )
            with ctx as url:
                line = throughput(
                    url, tmp, receiver_url, n=n // destinations, destinations=destinations
                )
            print(f"  {label:<10} throughput, {line}", flush=True)
        ctx = (
            contextlib.nullcontext(f"sqlite:///{tmp / 'outbound-lag.db'}")
            if label == "SQLite"
            else pg.database()
        )
        with ctx as url:
            print(
                f"  {label:<10} lag, {lag(url, tmp, receiver_url, rate=rate, seconds=seconds)}",
                flush=True,
            )


def _wait_listening(port: int) -> None:
    import socket

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.2),
        ):
            return
        time.sleep(0.05)
    raise RuntimeError("the receiver did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument(
        "--rate", type=float, default=100.0, help="changes per second in the lag run"
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    use_pg = not args.no_postgres and pg.reachable()
    with tempfile.TemporaryDirectory(prefix="mb-bench-outbound-") as tmpdir:
        tmp = Path(tmpdir)
        children = Children(tmp)
        try:
            run(children, tmp, n=args.messages, rate=args.rate, seconds=args.seconds, use_pg=use_pg)
        finally:
            children.close()


if __name__ == "__main__":
    main()
