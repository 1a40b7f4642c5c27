"""The failed-authentication limiter on its own: per address, per target, Retry-After, the
time moved by the test (the limiter's own time source and our clock seam), never slept."""

from __future__ import annotations

import secrets
import types

import limits.storage.memory
import pytest
import redis
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from merchant_backend import clock
from merchant_backend.errors import RateLimited
from merchant_backend.failed_auth import Attempt, FailedAuthLimiter
from merchant_backend.settings import Settings


class FakeTime:
    def __init__(self) -> None:
        self.t = 1_900_000_000.0

    def time(self) -> float:
        return self.t

    def now(self) -> float:
        return self.t


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    t = FakeTime()
    # The in-memory storage reads `time.time()`; our Retry-After reads the clock seam.
    monkeypatch.setattr(limits.storage.memory, "time", types.SimpleNamespace(time=t.time))
    monkeypatch.setattr(clock, "now", t.now)
    return t


def _count(channel: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "merchant_backend_auth_failures_total", {"channel": channel, "outcome": outcome}
    )
    return value or 0.0


def _fail(limiter: FailedAuthLimiter, attempt: Attempt) -> RateLimited | None:
    limiter.check(attempt)
    try:
        limiter.failed(attempt)
    except RateLimited as exc:
        return exc
    return None


def test_an_address_is_refused_after_its_failures_until_the_window_passes(
    fake_time: FakeTime,
) -> None:
    limiter = FailedAuthLimiter("memory://", "3/minute", "100/minute")
    guess = Attempt("api", "203.0.113.7", "merchant:mer_0000000000000001")
    refused_before = _count("api", "refused")
    limited_before = _count("api", "limited")
    assert [_fail(limiter, guess) for _ in range(3)] == [None, None, None]
    assert _count("api", "refused") == refused_before + 3
    # Three failures used the allowance: from now on the address is refused before its
    # credential is even looked at, until the oldest failure is a minute old.
    fake_time.t += 10
    with pytest.raises(RateLimited) as before:
        limiter.check(guess)
    assert before.value.retry_after == 50
    assert _count("api", "limited") == limited_before + 1
    # Another address is not affected.
    limiter.check(Attempt("api", "198.51.100.1", guess.target))
    # A minute after the first failures they no longer count.
    fake_time.t += 51
    limiter.check(guess)
    assert _fail(limiter, guess) is None


def test_a_target_under_a_spread_guess_answers_429_to_failures(fake_time: FakeTime) -> None:
    limiter = FailedAuthLimiter("memory://", "100/minute", "5/minute")
    target = "admin"
    outcomes = [_fail(limiter, Attempt("web", f"203.0.113.{i}", target)) for i in range(8)]
    assert outcomes[:5] == [None] * 5
    assert all(isinstance(o, RateLimited) for o in outcomes[5:])
    # A fresh address (not over its own limit) may still present the right credential: the
    # per-target limit never locks the owner out (check() only looks at the address).
    limiter.check(Attempt("web", "198.51.100.99", target))


def test_failures_are_logged_with_the_address(fake_time: FakeTime) -> None:
    limiter = FailedAuthLimiter("memory://", "100/minute", "1/minute")
    with capture_logs() as logged:
        _fail(limiter, Attempt("api", "203.0.113.9", "api"))
        _fail(limiter, Attempt("api", "203.0.113.10", "api"))
    failed = [r for r in logged if r["event"].startswith("authentication failed")]
    assert [(r["client"], r["log_level"]) for r in failed] == [
        ("203.0.113.9", "warning"),
        ("203.0.113.10", "warning"),
    ]
    assert failed[1]["limit"] == "target" and failed[1]["retry_after"] == 60
    # The limiter is never given the credential, so no log line can carry it.
    assert "token" not in Attempt.__dataclass_fields__


def test_an_unreachable_storage_fails_open(fake_time: FakeTime) -> None:
    limiter = FailedAuthLimiter("redis://127.0.0.1:1", "1/minute", "1/minute")
    attempt = Attempt("api", "203.0.113.10", "api")
    for _ in range(3):
        limiter.check(attempt)
        limiter.failed(attempt)


def test_several_processes_share_counts_through_redis() -> None:
    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("no Redis at 127.0.0.1:6379")
    uri = "redis://127.0.0.1:6379"
    one = FailedAuthLimiter(uri, "2/minute", "100/minute")
    two = FailedAuthLimiter(uri, "2/minute", "100/minute")
    # An address of its own, so runs sharing this Redis do not count each other's failures.
    attempt = Attempt("api", f"test-{secrets.token_hex(8)}", f"test-{secrets.token_hex(8)}")
    one.failed(attempt)
    two.failed(attempt)
    with pytest.raises(RateLimited) as limited:
        one.check(attempt)
    assert 1 <= limited.value.retry_after <= 60
    with pytest.raises(RateLimited):
        two.check(attempt)


def test_settings_refuse_a_rate_that_is_not_one() -> None:
    with pytest.raises(ValueError, match="write it like"):
        Settings(auth_failures_per_address="often")
