"""The webhook's credential cache: fresh enough to follow a changed secret, and not a way for
forged signatures to buy a database read and a decryption each."""

from __future__ import annotations

from typing import Any

import pytest

from merchant_backend.runtime import Runtime
from merchant_backend.store import datasets
from merchant_backend.store.secret_cache import SecretCache
from tests.conftest import MerchantCtx


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = datasets.secrets

    def counted(conn: Any, ring_for: Any, merchant_id: str, env: str) -> Any:
        seen.append(merchant_id)
        return real(conn, ring_for, merchant_id, env)

    monkeypatch.setattr(datasets, "secrets", counted)
    return seen


def test_forced_refreshes_are_limited_to_one_per_interval(
    runtime: Runtime, connected: MerchantCtx, reads: list[str]
) -> None:
    cache = SecretCache(runtime.engine, runtime.keys.for_token, ttl=60, min_refresh=60)
    assert cache.get(connected.id, "stage") is not None
    for _ in range(20):
        assert cache.get(connected.id, "stage", fresh=True) is not None
    assert len(reads) == 1


def test_a_forced_refresh_after_the_interval_reads_the_database(
    runtime: Runtime, connected: MerchantCtx, reads: list[str]
) -> None:
    cache = SecretCache(runtime.engine, runtime.keys.for_token, ttl=60, min_refresh=0)
    cache.get(connected.id, "stage")
    cache.get(connected.id, "stage", fresh=True)
    assert len(reads) == 2


def test_unknown_data_sets_are_not_cached(
    runtime: Runtime, merchant: MerchantCtx, reads: list[str]
) -> None:
    cache = SecretCache(runtime.engine, runtime.keys.for_token)
    assert cache.get(merchant.id, "stage") is None
    assert cache.peek(merchant.id, "stage") is None
    assert cache.get(merchant.id, "stage") is None
    assert len(reads) == 2
