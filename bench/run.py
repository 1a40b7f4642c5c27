"""``make bench``: ingest against a bare endpoint, then processing, on SQLite and PostgreSQL.

Prints figures and ratios to the baseline measured in the same run; the targets are shown
beside them, never enforced. Options: ``python -m bench.run --help``.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import signal
import sqlite3
import sys
import tempfile
from pathlib import Path
from statistics import median
from types import FrameType

import psycopg

from bench import ingest, pg, processing, retention, wrk
from bench.procs import Children

TARGET_RATIO = 0.5
TARGET_P99_MS = 25.0
TARGET_EVENTS_S = 5000.0


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    pg_version = "not reachable"
    if pg.reachable():
        with psycopg.connect(pg.ADMIN_URL) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            pg_version = str(row[0]) if row else "?"
    import uvicorn

    return (
        f"{platform.node()}: {len(__import__('os').sched_getaffinity(0))} CPUs ({cpu}), "
        f"Linux {platform.release()}, Python {platform.python_version()}, "
        f"uvicorn {uvicorn.__version__}, SQLite {sqlite3.sqlite_version}, "
        f"PostgreSQL {pg_version}"
    )


def _fmt(t: ingest.Target, ratio: float | None) -> str:
    r = f"{ratio:5.2f}" if ratio is not None else "  -  "
    worst = max(x.p99_ms for x in t.runs)
    bad = sum(x.errors + x.non_2xx for x in t.runs)
    return (
        f"  {t.name:<31} {t.median('rps'):7.0f} req/s  p50 {t.median('p50_ms'):6.2f} ms  "
        f"p99 {t.median('p99_ms'):6.2f} ms (worst {worst:6.2f})  ratio {r}  "
        f"server CPU {median(t.cpu_us):4.0f} us/req" + (f"  ERRORS/non-2xx {bad}" if bad else "")
    )


def bench_ingest(children: Children, tmp: Path, args: argparse.Namespace, use_pg: bool) -> None:
    print(
        f"\n== Ingest: {args.rounds} rounds x {args.requests} distinct signed events per target, "
        f"{args.connections} connections (servers on CPU {ingest.SERVER_CPU}, wrk on CPU "
        f"{ingest.LOAD_CPU}); medians over the rounds =="
    )
    with contextlib.ExitStack() as stack:
        targets = [ingest.start_bare(children)]
        targets.append(ingest.start_real(children, tmp, "SQLite", f"sqlite:///{tmp / 'ingest.db'}"))
        if use_pg:
            url = stack.enter_context(pg.database())
            targets.append(ingest.start_real(children, tmp, "PostgreSQL", url))
        files = ingest.LoadFiles(tmp)
        for t in targets:
            ingest.load(children, files, t, args.warmup, args.connections, record=False)
        for i in range(args.rounds):
            for t in targets:
                ingest.load(children, files, t, args.requests, args.connections)
            line = "  ".join(f"{t.runs[-1].rps:7.0f}" for t in targets)
            print(f"  round {i + 1}: req/s {line}", flush=True)
        bare = targets[0]
        ratios = {
            t.name: median(r.rps / b.rps for r, b in zip(t.runs, bare.runs, strict=True))
            for t in targets[1:]
        }
        print()
        print(_fmt(bare, None))
        for t in targets[1:]:
            print(_fmt(t, ratios[t.name]))
        for t in targets:
            children.stop(t.proc)
        for t in targets[1:]:
            assert t.database_url is not None
            stored = ingest.stored_events(t.database_url)
            print(
                f"  {t.name}: {stored} events in the inbox; {t.sent} sent, {t.answered} "
                "answered 2xx as wrk counted (it stops with the last few in flight)"
                + ("" if stored >= t.answered else "  MISSING EVENTS")
            )
    print(
        f"  targets: ratio >= {TARGET_RATIO} and p99 <= {TARGET_P99_MS:.0f} ms "
        "(a benchmark: shown, not enforced)"
    )
    for t in targets[1:]:
        ok_ratio = ratios[t.name] >= TARGET_RATIO
        ok_p99 = t.median("p99_ms") <= TARGET_P99_MS
        print(
            f"    {t.name:<31} ratio {'met' if ok_ratio else 'MISSED'}, "
            f"p99 {'met' if ok_p99 else 'MISSED'}"
        )


def bench_processing(children: Children, tmp: Path, args: argparse.Namespace, use_pg: bool) -> None:
    print(f"\n== Processing: {args.events} pending events, mixed lifecycles, shuffled ==")
    seed = 0
    for label in ("SQLite", "PostgreSQL"):
        if label == "PostgreSQL" and not use_pg:
            continue
        base: float | None = None
        for workers in (1, 2):
            seed += 1
            if label == "SQLite":
                ctx: contextlib.AbstractContextManager[str] = contextlib.nullcontext(
                    f"sqlite:///{tmp / f'processing-{workers}.db'}"
                )
            else:
                ctx = pg.database()
            with ctx as url:
                fig = processing.run_case(
                    children, label, url, n=args.events, workers=workers, seed=seed
                )
            base = base or fig.rate
            print(
                f"  {label:<10} {workers} worker{'s' if workers > 1 else ' '}  "
                f"{fig.rate:8.0f} events/s  ({fig.events} in {fig.seconds:.2f} s, "
                f"x{fig.rate / base:.2f} of 1 worker)",
                flush=True,
            )
    print(f"  target: >= {TARGET_EVENTS_S:.0f} events/s on SQLite (shown, not enforced)")


def bench_retention(tmp: Path, args: argparse.Namespace, use_pg: bool) -> None:
    print(
        f"\n== Retention: {args.retention_events} applied events 100 days old, bodies pruned "
        "(store/retention.py); sizes per 100,000 events =="
    )
    for label in ("SQLite", "PostgreSQL"):
        if label == "PostgreSQL" and not use_pg:
            continue
        with (
            contextlib.nullcontext(f"sqlite:///{tmp / 'retention.db'}")
            if label == "SQLite"
            else pg.database()
        ) as url:
            figures = retention.run_case(label, url, args.retention_events)
        for line in retention.report(figures):
            print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=30_000, help="events per ingest run")
    parser.add_argument("--rounds", type=int, default=3, help="ingest runs per target")
    parser.add_argument("--warmup", type=int, default=3_000, help="events sent before the runs")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--events", type=int, default=30_000, help="events per processing run")
    parser.add_argument(
        "--retention-events", type=int, default=100_000, help="events in the retention run"
    )
    parser.add_argument("--only", choices=["ingest", "processing", "retention"])
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()

    # Ctrl-C and kill both end in the cleanup below (also when started with SIGINT ignored).
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    if not wrk.available() and args.only in (None, "ingest"):
        sys.exit("wrk is not installed: run 'make bench' (it installs it) or apt-get install wrk")
    use_pg = not args.no_postgres and pg.reachable()
    print("merchant-backend benchmark")
    print(f"  machine: {machine()}")
    if not use_pg:
        print(f"  PostgreSQL: skipped ({'--no-postgres' if args.no_postgres else pg.ADMIN_URL})")
    with tempfile.TemporaryDirectory(prefix="mb-bench-") as tmpdir:
        tmp = Path(tmpdir)
        children = Children(tmp)
        try:
            if args.only in (None, "ingest"):
                bench_ingest(children, tmp, args, use_pg)
            if args.only in (None, "processing"):
                bench_processing(children, tmp, args, use_pg)
            if args.only in (None, "retention"):
                bench_retention(tmp, args, use_pg)
        except KeyboardInterrupt:
            print("\ninterrupted: stopping servers, dropping databases", file=sys.stderr)
            raise SystemExit(130) from None
        finally:
            children.close()


if __name__ == "__main__":
    main()
