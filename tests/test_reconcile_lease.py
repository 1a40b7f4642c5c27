"""One reconcile run at a time per data set: the lease in ``reconcile_state``.

A run that is mid-way is held by the fake Stripe (``hang``: every request waits for
``release``), so "at the same time" is a fact of the test, not a matter of timing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from structlog.testing import capture_logs

from merchant_backend.errors import Conflict
from merchant_backend.runtime import Runtime
from merchant_backend.services import background
from merchant_backend.services import reconcile as reconciling
from merchant_backend.settings import Settings
from merchant_backend.store import db
from merchant_backend.store import reconcile_state as rs
from merchant_backend.stripe import reconcile as rec
from tests.conftest import FakeClock, MerchantCtx
from tests.fake_stripe import FakeStripe
from tests.foundation_helpers import cli_env, run_cli
from tests.stripe_helpers import aimed_at, reconcile, wait_for
from tests.test_stripe_reconcile import T0, history, stored


@pytest.fixture
def settings(settings: Settings, fake: FakeStripe) -> Settings:
    return aimed_at(settings, fake.url)


def state_of(runtime: Runtime, merchant_id: str) -> rs.State:
    with db.read(runtime.engine) as conn:
        return rs.load_state(conn, merchant_id, "stage")


class Background:
    """A reconcile in a thread; its summary or its exception once it ends."""

    def __init__(self, runtime: Runtime, merchant_id: str, **kwargs: Any) -> None:
        self.summary: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._go, args=(runtime, merchant_id), kwargs=kwargs, daemon=True
        )
        self.thread.start()

    def _go(self, runtime: Runtime, merchant_id: str, **kwargs: Any) -> None:
        try:
            self.summary = reconcile(runtime, merchant_id, "stage", **kwargs)
        except BaseException as exc:  # handed to the test, which asserts on it
            self.error = exc

    def join(self) -> None:
        self.thread.join(15)
        assert not self.thread.is_alive(), "the first run did not end"


@contextmanager
def first_run_midway(fake: FakeStripe, runtime: Runtime, merchant_id: str) -> Iterator[Background]:
    """A run that holds the lease and waits inside its first page request."""
    fake.hang = True
    first = Background(runtime, merchant_id, since=T0, holder="the first run")
    try:
        wait_for("the first run to ask Stripe for a page", lambda: len(fake.requests) == 1)
        yield first
    finally:
        fake.hang = False
        fake.release.set()
        first.join()


def test_the_decision_to_take_the_lease() -> None:
    live = rs.Lease(owner="a", holder="cli", started_at=100.0, until=400.0)
    assert rs.may_take(None, "b", 200.0)
    assert not rs.may_take(live, "b", 200.0)
    assert not rs.may_take(live, "b", 399.9)
    assert rs.may_take(live, "b", 400.0)  # expired: its run died without releasing it
    assert rs.may_take(live, "a", 200.0)


def test_a_second_run_does_not_start_while_one_is_under_way(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx
) -> None:
    history(fake)
    with first_run_midway(fake, runtime, stage.id) as first:
        with pytest.raises(rs.ReconcileRunning) as caught:
            reconcile(runtime, stage.id, "stage", since=T0)
        assert len(fake.requests) == 1  # the second run never asked Stripe
        held = state_of(runtime, stage.id).lease
        assert held is not None and held.holder == "the first run"
    assert first.error is None
    assert first.summary is not None and first.summary["new"] == 6
    problem = caught.value
    # A conflict, not a Stripe error: each adapter maps it (CLI exit 1, web page 409, below).
    assert isinstance(problem, Conflict)
    assert problem.code == "reconcile_running"
    assert problem.message.startswith(
        f"a reconcile for {stage.id}/stage is already running (started "
    )
    assert "by the first run); wait for it or retry after " in problem.message
    assert state_of(runtime, stage.id).lease is None
    assert len(stored(runtime, stage.id)) == 6


@pytest.mark.parametrize("first_run", [True, False], ids=["first-run", "state-exists"])
def test_two_takers_at_the_same_moment_only_one_wins(
    runtime: Runtime, stage: MerchantCtx, first_run: bool
) -> None:
    if not first_run:
        with db.write(runtime.engine) as conn:
            rs.save_state(conn, stage.id, "stage", rs.State(synced_until=T0))
    takers = 4
    start = threading.Barrier(takers)
    outcomes: list[str] = []
    lock = threading.Lock()

    def take(n: int) -> None:
        start.wait(5)
        try:
            with db.write(runtime.engine) as conn:
                state = rs.take_lease(conn, stage.id, "stage", f"owner{n}", f"taker {n}", 1e9)
                rs.save_state(conn, stage.id, "stage", state)
            outcome = "took"
        except rs.ReconcileRunning:
            outcome = "refused"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=take, args=(n,)) for n in range(takers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert sorted(outcomes) == ["refused"] * (takers - 1) + ["took"]


def test_cli_refuses_with_exit_1_while_a_run_is_under_way(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx, settings: Settings
) -> None:
    history(fake)
    env = cli_env(settings, MERCHANT_BACKEND_STRIPE_API_BASE=fake.url)
    with first_run_midway(fake, runtime, stage.id):
        result = run_cli(["reconcile", "--merchant", stage.id, "--env", "stage"], env)
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    error = json.loads(result.stderr)["error"]
    assert error["code"] == "reconcile_running"
    assert error["message"].startswith(f"a reconcile for {stage.id}/stage is already running")
    assert "by the first run" in error["message"]
    assert "retry after 20" in error["message"]
    # Once the first run is done, the CLI runs, and names itself in the lease while it does.
    fake.requests.clear()
    seen: list[str] = []
    original = reconciling.take_lease

    def spy(*args: Any) -> rs.State:
        state = original(*args)
        seen.append(state.lease.holder if state.lease else "")
        return state

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(reconciling, "take_lease", spy)
        again = run_cli(["reconcile", "--merchant", stage.id, "--env", "stage"], env)
    assert again.exit_code == 0, again.output
    assert seen[0].startswith("merchant-backend reconcile (pid ")


def test_scheduler_skips_a_data_set_whose_run_is_under_way(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx
) -> None:
    history(fake)
    with first_run_midway(fake, runtime, stage.id):
        with capture_logs() as logged:
            assert background.Scheduler(runtime, 60).run_once() == 0
        assert len(fake.requests) == 1
    skipped = [e for e in logged if e["event"] == "scheduled reconcile skipped"]
    assert [e["log_level"] for e in skipped] == ["info"]
    assert skipped[0]["merchant_id"] == stage.id
    assert "already running" in skipped[0]["reason"]
    assert not [e for e in logged if e["event"] == "scheduled reconcile failed"]


def test_the_lease_is_released_on_success_and_on_failure(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rec, "PAGE_SIZE", 2)
    history(fake)

    def boom(run: rs.Run) -> None:
        if run.pages == 2:
            raise RuntimeError("the process is being stopped")

    with pytest.raises(RuntimeError):
        reconcile(runtime, stage.id, "stage", since=T0, on_page=boom)
    after_failure = state_of(runtime, stage.id)
    assert after_failure.lease is None
    assert after_failure.run is not None and after_failure.run.pages == 2
    summary = reconcile(runtime, stage.id, "stage")  # not refused: the lease is free
    assert summary["resumed"] is True
    after_success = state_of(runtime, stage.id)
    assert after_success.lease is None
    assert after_success.run is None


def test_an_expired_lease_is_taken_over_and_the_run_resumes_from_its_cursor(
    fake: FakeStripe,
    runtime: Runtime,
    stage: MerchantCtx,
    monkeypatch: pytest.MonkeyPatch,
    clock: FakeClock,
) -> None:
    monkeypatch.setattr(rec, "PAGE_SIZE", 2)
    made = history(fake)
    newest_first = sorted(made, key=lambda e: e["created"], reverse=True)
    # A crash: the process dies after two pages and never releases its lease.
    release = reconciling.release_lease
    monkeypatch.setattr(reconciling, "release_lease", lambda *_args: None)

    def killed(run: rs.Run) -> None:
        if run.pages == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        reconcile(runtime, stage.id, "stage", since=T0, on_page=killed, holder="crashed")
    monkeypatch.setattr(reconciling, "release_lease", release)
    crashed = state_of(runtime, stage.id)
    assert crashed.lease is not None and crashed.lease.holder == "crashed"
    with pytest.raises(rs.ReconcileRunning):
        reconcile(runtime, stage.id, "stage")
    clock.set(crashed.lease.until + 1)
    fake.requests.clear()
    summary = reconcile(runtime, stage.id, "stage")
    assert summary["resumed"] is True
    assert summary["since"] == T0
    assert fake.requests[0].one("starting_after") == newest_first[3]["id"]
    assert (summary["pages"], summary["fetched"], summary["new"]) == (5, 9, 6)
    assert len(stored(runtime, stage.id)) == 6
    assert state_of(runtime, stage.id).lease is None


def test_a_stalled_run_whose_lease_was_taken_over_does_not_overwrite_the_new_one(
    fake: FakeStripe, runtime: Runtime, stage: MerchantCtx, clock: FakeClock
) -> None:
    history(fake)
    with first_run_midway(fake, runtime, stage.id) as stalled:
        held = state_of(runtime, stage.id).lease
        assert held is not None
        clock.set(held.until + 1)
        fake.hang = False
        taker = reconcile(runtime, stage.id, "stage", since=T0, holder="the taker")
    assert taker["new"] == 6
    assert isinstance(stalled.error, rs.ReconcileRunning)
    assert stalled.error.code == "reconcile_lease_lost"
    assert "went longer than 300 s without progress" in stalled.error.message
    state = state_of(runtime, stage.id)
    assert state.lease is None
    assert state.run is None
    assert state.last_summary == taker
    assert state.synced_until == taker["until"]
