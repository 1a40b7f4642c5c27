"""The bulkhead on its own: admission per key and in all, refusal at once, its own threads;
and the Stripe time budget against a socket that accepts and never answers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import anyio
import anyio.to_thread
import pytest

from merchant_backend.api.errors import upstream_status
from merchant_backend.bulkhead import Bulkhead
from merchant_backend.errors import Busy, UpstreamFailure
from merchant_backend.runtime import Runtime
from merchant_backend.stripe.client import connect, time_budget
from tests.conftest import MerchantCtx, add_data_set
from tests.silent_stripe import silent_stripe


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Gate:
    """Work that holds its slot until the test opens the gate."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.entered = threading.Semaphore(0)

    def work(self, value: str) -> str:
        self.entered.release()
        assert self.opened.wait(30)
        return value


async def _started(gate: Gate, n: int) -> None:
    for _ in range(n):
        await anyio.to_thread.run_sync(gate.entered.acquire)


@pytest.mark.anyio
async def test_per_key_bound_refuses_at_once_and_others_still_get_in() -> None:
    head = Bulkhead("stripe", total=4, per_key=2, retry_after=3)
    gate = Gate()
    results: list[str] = []

    async def run(key: str) -> None:
        results.append(await head.run(key, gate.work, key))

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, "A")
        tg.start_soon(run, "A")
        await _started(gate, 2)
        assert head.in_use("A") == 2
        with pytest.raises(Busy) as refused:
            await head.run("A", gate.work, "A")
        assert refused.value.retry_after == 3
        assert "this merchant" in refused.value.message
        # Another key is not queued behind A: it gets in and runs.
        tg.start_soon(run, "B")
        await _started(gate, 1)
        assert head.in_use() == 3
        gate.opened.set()
    assert sorted(results) == ["A", "A", "B"]
    assert head.in_use() == 0 and head.in_use("A") == 0


@pytest.mark.anyio
async def test_total_bound_refuses_every_key_once_full() -> None:
    head = Bulkhead("stripe", total=2, per_key=2)
    gate = Gate()
    async with anyio.create_task_group() as tg:
        tg.start_soon(head.run, "A", gate.work, "A")
        tg.start_soon(head.run, "B", gate.work, "B")
        await _started(gate, 2)
        with pytest.raises(Busy) as refused:
            await head.run("C", gate.work, "C")
        assert "already waiting on Stripe" in refused.value.message
        gate.opened.set()
    # Room again once they are done.
    assert await head.run("C", str.upper, "c") == "C"


@pytest.mark.anyio
async def test_a_failure_gives_the_slot_back() -> None:
    head = Bulkhead("stripe", total=1, per_key=1)

    def boom() -> None:
        raise RuntimeError("stripe said no")

    for _ in range(3):
        with pytest.raises(RuntimeError):
            await head.run("A", boom)
    assert head.in_use() == 0


@pytest.mark.anyio
async def test_bulkhead_work_takes_no_token_of_the_shared_pool() -> None:
    head = Bulkhead("stripe", total=3, per_key=3)
    gate = Gate()
    shared = anyio.to_thread.current_default_thread_limiter()
    before = shared.borrowed_tokens
    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(head.run, "A", gate.work, "A")
        for _ in range(3):
            await anyio.to_thread.run_sync(gate.entered.acquire, limiter=anyio.CapacityLimiter(1))
        assert shared.borrowed_tokens == before
        # A plain blocking route still gets a thread at once.
        assert await anyio.to_thread.run_sync(str.lower, "READ") == "read"
        gate.opened.set()


# --- the Stripe time budget ---------------------------------------------------------------


@pytest.fixture
def hanging_stripe() -> Iterator[str]:
    with silent_stripe() as base:
        yield base


def test_all_calls_of_a_request_share_one_time_budget(
    runtime: Runtime, merchant: MerchantCtx, hanging_stripe: str
) -> None:
    # Each try may wait 60 s and there are 3 tries: without the budget this is 3 minutes.
    runtime.settings = runtime.settings.model_copy(
        update={
            "stripe_api_base": hanging_stripe,
            "stripe_timeout": 60.0,
            "stripe_max_network_retries": 2,
        }
    )
    add_data_set(runtime, merchant.id, "stage")
    connection = connect(runtime, merchant.id, "stage")
    started = time.monotonic()
    with time_budget(1.0), pytest.raises(UpstreamFailure) as failed:
        connection.call(
            "account.retrieve",
            "read the account",
            lambda: connection.client.v1.accounts.retrieve(connection.account_id),
        )
    assert upstream_status(failed.value) == 504 and failed.value.code == "stripe_timeout"
    # A second call in the same request has nothing left: refused without waiting at all.
    with time_budget(0.0), pytest.raises(UpstreamFailure) as spent:
        connection.call("account.retrieve", "read the account", lambda: None)
    assert spent.value.code == "stripe_timeout"
    assert "time budget" in spent.value.message
    # Generous: the bound is 1 s; a loaded machine may take a few more, never the 180 s.
    assert time.monotonic() - started < 30
