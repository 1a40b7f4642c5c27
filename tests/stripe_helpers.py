"""Helpers for the tests of talking to Stripe (issue 4): settings aimed at a fake Stripe.

conftest loads this module as a plugin, so its fixtures serve every test module: ``fake`` (a
running fake Stripe) and ``stage`` (the merchant with a stage data set whose key ``fake``
knows). A module aims the settings at the fake itself, with ``aimed_at`` in its own
``settings`` fixture, as its timeouts are its own choice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from merchant_backend.runtime import Runtime
from merchant_backend.services import connection
from merchant_backend.services import reconcile as reconciling
from merchant_backend.settings import Settings
from merchant_backend.vocabulary import HANDLED_EVENTS
from tests import webhook_support
from tests.conftest import SECRET_KEY, MerchantCtx, add_data_set
from tests.fake_stripe import FakeStripe, running

ACCOUNT = "acct_1PgafTB7WZ01zgkW"  # conftest.add_data_set's default account id
ALL_EVENTS = list(HANDLED_EVENTS)
T = TypeVar("T")


def aimed_at(settings: Settings, api_base: str, **changes: object) -> Settings:
    """The test settings with Stripe calls going to ``api_base``; no waiting on retries."""
    update: dict[str, object] = {
        "stripe_api_base": api_base,
        "stripe_timeout": 2.0,
        "stripe_max_network_retries": 0,
    }
    update.update(changes)
    return settings.model_copy(update=update)


def our_url(settings: Settings, merchant_id: str, env: str = "stage") -> str:
    return f"{settings.public_url}/webhooks/stripe/{merchant_id}/{env}"


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 15.0) -> T:
    """Poll ``probe`` until it returns something truthy, failing after ``timeout`` seconds."""
    found: T = webhook_support.wait_for(probe, timeout, interval=0.05, what=what)
    return found


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with running() as f:
        yield f


@pytest.fixture
def stage(runtime: Runtime, merchant: MerchantCtx, fake: FakeStripe) -> MerchantCtx:
    add_data_set(runtime, merchant.id, "stage")
    fake.add_key(SECRET_KEY, ACCOUNT)
    return merchant


# The use cases' typed results as the API and the CLI print them, so assertions read the JSON.
def reconcile(rt: Runtime, merchant_id: str, env: str, **kwargs: Any) -> dict[str, Any]:
    return reconciling.reconcile(rt, merchant_id, env, **kwargs).as_json()


def verify_connection(rt: Runtime, merchant_id: str, env: str) -> dict[str, Any]:
    return connection.verify_data_set(rt, merchant_id, env).as_json()


def provision_webhook(rt: Runtime, merchant_id: str, env: str) -> dict[str, Any]:
    return connection.provision_webhook(rt, merchant_id, env).as_json()
