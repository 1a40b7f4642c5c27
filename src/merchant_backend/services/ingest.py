"""Taking in Stripe's webhook deliveries: what ``POST /webhooks/stripe/…`` needs from below.

The endpoint (``api/webhooks.py``) runs its checks in the order its docstring names and calls
down for three things: the data set's webhook credentials (a ``SecretCache``: ``peek`` on the
event loop, ``get`` in a thread when nothing fresh is cached or a signature failed), whether
the merchant of a missing data set exists (``merchants.merchant_exists``), and ``submit``: the
inbox row of a verified event, handed to this process's group commit (an ``InboxWriter``). The
cache and the writer are built once per process (``Runtime``, ``asgi``) and passed in.

This is the hot path: each function does only what the endpoint used to do inline (no thread
hop, copy or lookup of its own); it lives here so that no adapter imports ``store/``.
"""

from __future__ import annotations

from collections.abc import Awaitable

from merchant_backend.store.inbox import NewEvent, ParsedEvent
from merchant_backend.store.inbox_writer import InboxUnavailable as InboxUnavailable
from merchant_backend.store.inbox_writer import InboxWriter as InboxWriter
from merchant_backend.store.secret_cache import Credentials as Credentials
from merchant_backend.store.secret_cache import SecretCache as SecretCache


def submit(
    writer: InboxWriter, event: ParsedEvent, merchant_id: str, env: str, body: bytes
) -> Awaitable[bool]:
    """Hand a verified event's inbox row (the exact bytes it came as) to the group commit.

    Awaiting the answer waits for the commit: True if the event is new, False if a duplicate;
    ``InboxUnavailable`` if it did not commit (the endpoint answers 503 and Stripe retries).
    A plain function returning the writer's coroutine: no coroutine frame of its own.
    """
    return writer.submit(NewEvent.of(event, merchant_id, env, body, "webhook"))
