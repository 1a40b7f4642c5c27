"""How a request's use case that waits on Stripe is run: in the Stripe bulkhead, on its
threads, with one time budget for all its Stripe calls.

Adapters call ``await stripe_work.run(rt, merchant_id, use_case, *args)`` from an ``async``
route instead of running a blocking route in the shared thread pool: past the merchant's or
the process's bound it raises ``Busy`` at once (429 + ``Retry-After``), so reads, sign-in and
webhooks never wait behind Stripe (see ``merchant_backend.bulkhead``), and the use case's
Stripe calls share ``MERCHANT_BACKEND_STRIPE_REQUEST_BUDGET`` seconds (504 when spent).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from merchant_backend.runtime import Runtime
from merchant_backend.stripe.client import within_budget

T = TypeVar("T")


async def run(rt: Runtime, merchant_id: str, use_case: Callable[..., T], *args: Any) -> T:
    budget = rt.settings.stripe_request_budget
    return await rt.stripe_bulkhead.run(merchant_id, within_budget, budget, use_case, *args)
