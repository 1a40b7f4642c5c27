"""The work ``serve`` does in the background, side by side: the event worker's loop, the
outbound dispatcher, the retention pruner and the reconcile scheduler. Each runs in its own
thread and stops when the app shuts down."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from merchant_backend import logs
from merchant_backend.outbound.dispatcher import Dispatcher
from merchant_backend.runtime import Runtime
from merchant_backend.services.reconcile import reconcile
from merchant_backend.store import datasets, db
from merchant_backend.store.reconcile_state import ReconcileRunning
from merchant_backend.store.retention import Pruner
from merchant_backend.stripe.reconcile import default_holder
from merchant_backend.sync.worker import Worker


def log() -> Any:
    return logs.get("merchant_backend.reconcile")


class Scheduler:
    """Reconciles every data set every ``interval`` seconds, in a thread inside ``serve``.

    A failure (Stripe down, a key revoked) is logged and the next data set goes on; the
    next round resumes it. Runs once right away: a restart after downtime is when it matters.
    """

    def __init__(self, rt: Runtime, interval: float) -> None:
        self.rt = rt
        self.interval = interval
        self._stop = threading.Event()
        self.who = default_holder()

    def run_once(self) -> int:
        with db.read(self.rt.engine) as conn:
            keys = datasets.list_keys(conn)
        done = 0
        for merchant_id, env in keys:
            if self._stop.is_set():
                break
            try:
                reconcile(self.rt, merchant_id, env, holder=f"the scheduler of serve ({self.who})")
                done += 1
            except ReconcileRunning as exc:
                # A CLI run or another serve process is on it: its run covers this round.
                log().info(
                    "scheduled reconcile skipped", merchant_id=merchant_id, env=env, reason=str(exc)
                )
            except Exception as exc:  # one broken data set must not stop the others
                log().warning(
                    "scheduled reconcile failed",
                    merchant_id=merchant_id,
                    env=env,
                    error=logs.error_text(exc),
                )
        return done

    def run_forever(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as exc:  # the database is away: try again next round
                log().error("reconcile round failed", error=logs.redact(str(exc))[:300])
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.run_forever, name="reconcile", daemon=True)
        thread.start()
        return thread


@dataclass
class Background:
    """The threads of one ``serve`` process: the worker (unless ``--no-worker``), the pruner of
    old events' bodies (when ``event_retention_days`` > 0) and the reconcile scheduler (when
    ``reconcile_interval`` > 0)."""

    rt: Runtime
    run_worker: bool
    # Outbound notifications (unless ``--no-dispatcher``); follows the worker by default.
    run_dispatcher: bool | None = None
    worker_thread: threading.Thread | None = None
    dispatcher_thread: threading.Thread | None = None
    prune_thread: threading.Thread | None = None
    reconcile_thread: threading.Thread | None = None
    _stoppers: list[Any] = field(default_factory=list)

    def start(self) -> None:
        if self.run_worker:
            worker = Worker(self.rt.engine, self.rt.settings, bell=self.rt.inbox_bell, pace=True)
            self.worker_thread = worker.start_thread()
            self._stoppers.append((worker, self.worker_thread))
        if self.run_worker if self.run_dispatcher is None else self.run_dispatcher:
            dispatcher = Dispatcher(self.rt)
            self.dispatcher_thread = dispatcher.start_thread()
            self._stoppers.append((dispatcher, self.dispatcher_thread))
        settings = self.rt.settings
        if settings.event_retention_days > 0:
            # Old applied and ignored events' bodies, in small batches (store/retention.py).
            pruner = Pruner(
                self.rt.engine, settings.event_retention_days, settings.event_prune_interval
            )
            self.prune_thread = pruner.start_thread()
            self._stoppers.append((pruner, self.prune_thread))
        if self.rt.settings.reconcile_interval > 0:
            scheduler = Scheduler(self.rt, self.rt.settings.reconcile_interval)
            self.reconcile_thread = scheduler.start_thread()
            self._stoppers.append((scheduler, self.reconcile_thread))

    def stop(self) -> None:
        # In the reverse order of their start: the scheduler first, the worker last.
        for runner, thread in reversed(self._stoppers):
            runner.stop()
            thread.join(timeout=10)
        self._stoppers.clear()
