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

from bench import fairness, ingest, instructions, outbound, pg, processing, retention, wrk
from bench.procs import Children

# The targets of issue 11, printed beside each figure (a benchmark: shown, never enforced).
TARGET_RATIO_BARE = 0.35  # serve --no-worker / bare endpoint
TARGET_RATIO_DOCS = 5.0  # serve (ingest and apply) / docs-style handler
TARGET_P99_MS = 25.0  # 2xx at half the maximum rate
TARGET_LAG_P50_MS = 10.0  # apply lag at half the maximum rate, SQLite
TARGET_LAG_P99_MS = 50.0
TARGET_FAIR_S = 1.0  # B's event behind A's backlog: no more than one batch
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


def _fmt(t: ingest.Target) -> str:
    worst = max(x.p99_ms for x in t.runs)
    bad = sum(x.errors + x.non_2xx for x in t.runs)
    return (
        f"  {t.name:<38} {t.median('rps'):7.0f} req/s  p50 {t.median('p50_ms'):6.2f} ms  "
        f"p99 {t.median('p99_ms'):6.2f} ms (worst {worst:6.2f})  "
        f"CPU {median(t.cpu_us):4.0f} us/req" + (f"  ERRORS/non-2xx {bad}" if bad else "")
    )


def _cpu_ticks() -> tuple[int, int] | None:
    """(steal, all) clock ticks of every CPU since boot, from ``/proc/stat``; None elsewhere.

    Steal is time the host gave this VM's CPUs to someone else: in a round with steal, every
    server in it was slowed by chance, which is why rounds of one run can differ by 30 %."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if len(fields) < 9 or fields[0] != "cpu":
        return None
    ticks = [int(v) for v in fields[1:]]
    return ticks[7], sum(ticks[:8])  # user … steal; guest time is already in user


def _steal_since(before: tuple[int, int] | None) -> str:
    after = _cpu_ticks()
    if before is None or after is None or after[1] == before[1]:
        return ""
    return f"  (CPU steal {100 * (after[0] - before[0]) / (after[1] - before[1]):4.1f} %)"


def _ratio(t: ingest.Target, base: ingest.Target) -> float:
    """Median over rounds of this round's rate / the base's rate in the same round."""
    return float(median(r.rps / b.rps for r, b in zip(t.runs, base.runs, strict=True)))


def _mark(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _applied(t: ingest.Target) -> str:
    return (
        f"      applied {t.median_applied('rate'):7.0f} events/s while ingesting; apply lag p50 "
        f"{t.median_applied('lag_p50_ms'):7.1f} ms  p99 {t.median_applied('lag_p99_ms'):7.1f} ms"
    )


def bench_ingest(children: Children, tmp: Path, args: argparse.Namespace, use_pg: bool) -> None:
    print(
        f"\n== Ingest: {args.rounds} rounds x {args.requests} distinct signed events per server, "
        f"{args.connections} connections (servers on CPU {ingest.SERVER_CPU}, wrk on CPU "
        f"{ingest.LOAD_CPU}); each round takes every server in turn; medians over the rounds =="
    )
    with contextlib.ExitStack() as stack:
        bare = ingest.start_bare(children)
        docs = ingest.start_docs_handler(children, tmp)
        lite = ingest.start_real(children, tmp, "SQLite", f"sqlite:///{tmp / 'ingest.db'}")
        serve = ingest.start_real(
            children, tmp, "SQLite", f"sqlite:///{tmp / 'serve.db'}", worker=True
        )
        targets = [bare, docs, lite, serve]
        pg_targets: list[ingest.Target] = []
        if use_pg:
            url = stack.enter_context(pg.database())
            pg_targets.append(ingest.start_real(children, tmp, "PostgreSQL", url))
            for n in (1, 2):
                url = stack.enter_context(pg.database())
                pg_targets.append(
                    ingest.start_real(children, tmp, "PostgreSQL", url, worker=True, processes=n)
                )
        targets += pg_targets
        files = ingest.LoadFiles(tmp)
        for t in targets:
            ingest.load(children, files, t, args.warmup, args.connections, record=False)
        for i in range(args.rounds):
            ticks = _cpu_ticks()
            for t in targets:
                ingest.load(children, files, t, args.requests, args.connections)
            line = "  ".join(f"{t.runs[-1].rps:6.0f}" for t in targets)
            print(f"  round {i + 1}: req/s {line}{_steal_since(ticks)}", flush=True)

        # Half the maximum rate of serve (its median above): each connection pauses between
        # requests (wrk's delay(); a closed loop, so the rate is approximate and printed).
        half = serve.median("rps") / 2
        delay_ms = max(1, round(args.connections * 1000 / half - serve.median("p50_ms")))
        paced = ingest.Target(
            f"serve, SQLite, at ~half its max rate ({half:.0f}/s)",
            serve.port,
            serve.path,
            serve.proc,
            serve.database_url,
            applies=True,
        )
        for _ in range(args.rounds):
            ingest.load(
                children,
                files,
                paced,
                max(2000, args.requests // 4),
                args.connections,
                delay_ms=delay_ms,
            )

        print()
        print(_fmt(bare) + "  (the limit)")
        print(_fmt(docs))
        print(_fmt(lite))
        print(_fmt(serve))
        print(_applied(serve))
        print(_fmt(paced))
        print(_applied(paced))
        for t in pg_targets:
            print(_fmt(t))
            if t.applies:
                print(_applied(t))
        for t in targets:
            children.stop(t.proc)
        for t in targets[2:]:
            assert t.database_url is not None
            stored = ingest.stored_events(t.database_url)
            expected = t.answered + (paced.answered if t is serve else 0)
            print(
                f"  {t.name}: {stored} events in the inbox, {expected} answered 2xx as wrk "
                "counted (it stops with the last few in flight)"
                + ("" if stored >= expected else "  MISSING EVENTS")
            )

    r_bare = _ratio(lite, bare)
    r_docs = _ratio(serve, docs)
    print("\n  against the targets (shown, never enforced):")
    print(
        f"    serve --no-worker / bare endpoint      {r_bare:6.2f}   target >= "
        f"{TARGET_RATIO_BARE}  {_mark(r_bare >= TARGET_RATIO_BARE)}"
    )
    print(
        f"    serve / docs-style handler             {r_docs:6.2f}   target >= "
        f"{TARGET_RATIO_DOCS}  {_mark(r_docs >= TARGET_RATIO_DOCS)}"
    )
    p99 = paced.median("p99_ms")
    lag50 = paced.median_applied("lag_p50_ms")
    lag99 = paced.median_applied("lag_p99_ms")
    print(
        f"    2xx p99 at half the max rate           {p99:6.2f} ms  target <= "
        f"{TARGET_P99_MS:.0f} ms  {_mark(p99 <= TARGET_P99_MS)}"
    )
    print(
        f"    apply lag p50 at half the max rate     {lag50:6.2f} ms  target <= "
        f"{TARGET_LAG_P50_MS:.0f} ms  {_mark(lag50 <= TARGET_LAG_P50_MS)}"
    )
    print(
        f"    apply lag p99 at half the max rate     {lag99:6.2f} ms  target <= "
        f"{TARGET_LAG_P99_MS:.0f} ms  {_mark(lag99 <= TARGET_LAG_P99_MS)}"
    )
    if len(pg_targets) == 3:
        one, two = pg_targets[1], pg_targets[2]
        print(
            f"    PostgreSQL serve, 2 processes / 1      {_ratio(two, one):6.2f}   "
            "(no target: 2 CPUs, and wrk and PostgreSQL need them too)"
        )


def bench_fairness(children: Children, tmp: Path, args: argparse.Namespace, use_pg: bool) -> None:
    print(
        f"\n== Fairness: {args.backlog} events of merchant A queued at once, then one delivery "
        "of merchant B, default serve (worker inside) =="
    )
    cases: list[tuple[str, contextlib.AbstractContextManager[str]]] = [
        ("SQLite", contextlib.nullcontext(f"sqlite:///{tmp / 'fairness.db'}"))
    ]
    if use_pg:
        cases.append(("PostgreSQL", pg.database()))
    for label, ctx in cases:
        with ctx as url:
            fig = fairness.run_case(children, tmp, label, url, backlog=args.backlog)
        ok = fig.b_lag_ms / 1000 <= TARGET_FAIR_S
        print(
            f"  {label:<10} B waited {fig.b_lag_ms:7.1f} ms (2xx to applied); A's backlog took "
            f"{fig.a_drain_s:5.2f} s, which B would have waited in arrival order; target "
            f"<= one batch ({fig.batch_size} events, <= {TARGET_FAIR_S:.0f} s)  {_mark(ok)}",
            flush=True,
        )


def bench_processing(children: Children, tmp: Path, args: argparse.Namespace, use_pg: bool) -> None:
    print(f"\n== Processing: {args.events} pending events, mixed lifecycles, shuffled ==")
    seed = 0
    for label in ("SQLite", "PostgreSQL"):
        if label == "PostgreSQL" and not use_pg:
            continue
        base: float | None = None
        # 1,000 merchants: each batch spans hundreds of them (a shared installation).
        for workers, merchants in ((1, 1), (2, 1), (1, 1000)):
            seed += 1
            if label == "SQLite":
                ctx: contextlib.AbstractContextManager[str] = contextlib.nullcontext(
                    f"sqlite:///{tmp / f'processing-{workers}-{merchants}.db'}"
                )
            else:
                ctx = pg.database()
            with ctx as url:
                fig = processing.run_case(
                    children,
                    label,
                    url,
                    n=args.events,
                    workers=workers,
                    seed=seed,
                    merchants=merchants,
                )
            base = base or fig.rate
            shops = "" if merchants == 1 else f", {merchants} merchants"
            print(
                f"  {label:<10} {workers} worker{'s' if workers > 1 else ' '}{shops:<16}  "
                f"{fig.rate:8.0f} events/s  ({fig.events} in {fig.seconds:.2f} s, "
                f"x{fig.rate / base:.2f} of 1 worker, 1 merchant)",
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


def bench_instructions(tmp: Path) -> None:
    print(
        "\n== Instructions (valgrind's callgrind, in-process, SQLite; the same on any machine: "
        "compare between commits) =="
    )
    if not instructions.available():
        print("  skipped: valgrind is not installed (apt-get install valgrind)")
        return
    workdir = tmp / "instructions"
    workdir.mkdir()
    instructions.report(instructions.measure(workdir))


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
    parser.add_argument("--backlog", type=int, default=20_000, help="merchant A's backlog")
    parser.add_argument(
        "--only",
        choices=["ingest", "fairness", "processing", "retention", "outbound", "instructions"],
    )
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
            if args.only in (None, "fairness"):
                bench_fairness(children, tmp, args, use_pg)
            if args.only in (None, "processing"):
                bench_processing(children, tmp, args, use_pg)
            if args.only in (None, "retention"):
                bench_retention(tmp, args, use_pg)
            if args.only in (None, "outbound"):
                outbound.run(children, tmp, n=4000, rate=50.0, seconds=10.0, use_pg=use_pg)
            if args.only in (None, "instructions"):
                bench_instructions(tmp)
        except KeyboardInterrupt:
            print("\ninterrupted: stopping servers, dropping databases", file=sys.stderr)
            raise SystemExit(130) from None
        finally:
            children.close()


if __name__ == "__main__":
    main()
