"""Create (or complete) the Stripe webhook endpoint of a data set and keep its signing secret.

The endpoint sends to ``MERCHANT_BACKEND_PUBLIC_URL/webhooks/stripe/{merchant}/{env}``, exactly
the 15 handled events, at the pinned API version. Stripe shows an endpoint's signing secret
only in the answer that creates it, so it is stored (encrypted) at once. When an endpoint for
that URL already exists, the missing events are added to it instead of creating a second one
(two endpoints would sign the same events with two secrets, and we can keep only one).
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from merchant_backend import clock
from merchant_backend.errors import FieldError, InvalidInput
from merchant_backend.runtime import Runtime
from merchant_backend.store import datasets, db
from merchant_backend.stripe.client import (
    STRIPE_API_VERSION,
    StripeConnection,
    as_json,
    connect,
    post_options,
)
from merchant_backend.stripe.errors import StripeProblem
from merchant_backend.stripe.failure_report import failure_report
from merchant_backend.stripe.verify import missing_events
from merchant_backend.vocabulary import HANDLED_EVENTS

_LOCAL_NAMES = ("localhost", "localhost.localdomain")


def live_url_problem(url: str) -> str | None:
    """Why Stripe's live mode could not deliver to ``url`` (None if it can). Pure."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        return (
            f"live webhooks need an HTTPS URL, but MERCHANT_BACKEND_PUBLIC_URL gives {url}: "
            "set it to the public https:// address of this service"
        )
    host = (parts.hostname or "").lower()
    if not host or host in _LOCAL_NAMES or host.endswith(".localhost"):
        return (
            f"{url} points at this machine, which Stripe cannot reach: set "
            "MERCHANT_BACKEND_PUBLIC_URL to the public address of this service"
        )
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.is_loopback or ip.is_unspecified or ip.is_private or ip.is_link_local:
        return (
            f"{url} is a loopback or private address, which Stripe cannot reach: set "
            "MERCHANT_BACKEND_PUBLIC_URL to the public address of this service"
        )
    return None


def _endpoint_view(endpoint: dict[str, Any]) -> dict[str, Any]:
    """What we show of an endpoint: never its secret."""
    keys = ("id", "url", "status", "enabled_events", "api_version", "livemode")
    return {k: endpoint.get(k) for k in keys}


def _find_ours(sc: StripeConnection, url: str) -> list[dict[str, Any]]:
    def fetch() -> list[dict[str, Any]]:
        page = sc.client.v1.webhook_endpoints.list(params={"limit": 100})
        return [as_json(e) for e in page.auto_paging_iter()]

    endpoints = sc.call("webhook_endpoints.list", "list the webhook endpoints", fetch)
    return [e for e in endpoints if str(e.get("url", "")).rstrip("/") == url]


def _create(rt: Runtime, sc: StripeConnection, url: str) -> dict[str, Any]:
    params: dict[str, Any] = {
        "url": url,
        "enabled_events": list(HANDLED_EVENTS),
        "api_version": STRIPE_API_VERSION,
        "description": f"merchant-backend {sc.merchant_id} {sc.env}",
    }
    options = post_options()
    created = sc.call(
        "webhook_endpoints.create",
        "create the webhook endpoint",
        lambda: sc.client.v1.webhook_endpoints.create(params=params, options=options),  # type: ignore[arg-type]
    )
    endpoint = as_json(created)
    secret = endpoint.get("secret")
    stored = isinstance(secret, str) and bool(secret)
    with db.write(rt.engine) as conn:
        current = datasets.get(conn, sc.merchant_id, sc.env)
        if stored and current is not None and current.signing_secret_hint:
            # Another endpoint may still sign with the old secret: keep it valid for a day.
            datasets.roll_signing_secret(conn, rt.keys.get(), sc.merchant_id, sc.env, str(secret))
        elif stored:
            datasets.set_signing_secret(conn, rt.keys.get(), sc.merchant_id, sc.env, str(secret))
        datasets.set_webhook_endpoint_id(conn, sc.merchant_id, sc.env, str(endpoint["id"]))
    message = (
        f"created webhook endpoint {endpoint['id']} for {url} with the "
        f"{len(HANDLED_EVENTS)} events; its signing secret is stored"
        if stored
        else f"created webhook endpoint {endpoint['id']}, but Stripe returned no signing secret: "
        "reveal it under Developers → Webhooks → the endpoint and store it with 'stripe set'"
    )
    return {
        "action": "created",
        "endpoint": _endpoint_view(endpoint),
        "added_events": list(HANDLED_EVENTS),
        "signing_secret_stored": stored,
        "message": message,
    }


def _complete(
    rt: Runtime, sc: StripeConnection, endpoint: dict[str, Any], duplicates: int
) -> dict[str, Any]:
    endpoint_id = str(endpoint["id"])
    enabled = list(endpoint.get("enabled_events") or [])
    missing = missing_events(enabled)
    params: dict[str, Any] = {}
    if missing:
        # Keep what the merchant subscribed to besides ours.
        params["enabled_events"] = enabled + missing
    if endpoint.get("status") == "disabled":
        params["disabled"] = False
    if params:
        options = post_options()
        updated = sc.call(
            "webhook_endpoints.update",
            "update the webhook endpoint",
            lambda: sc.client.v1.webhook_endpoints.update(
                endpoint_id,
                params=params,  # type: ignore[arg-type]
                options=options,  # type: ignore[arg-type]
            ),
        )
        endpoint = as_json(updated)
    with db.read(rt.engine) as conn:
        stored = datasets.get(conn, sc.merchant_id, sc.env)
    has_secret = bool(stored and stored.signing_secret_hint)
    with db.write(rt.engine) as conn:
        datasets.set_webhook_endpoint_id(conn, sc.merchant_id, sc.env, endpoint_id)
    done = []
    if missing:
        done.append(f"added {len(missing)} missing event(s)")
    if "disabled" in params:
        done.append("enabled it again")
    what = " and ".join(done) if done else "it already sends all the events"
    secret_note = (
        "the stored signing secret is kept (Stripe reveals a secret only when it creates an "
        "endpoint)"
        if has_secret
        else "no signing secret is stored and Stripe reveals it only when it creates an "
        "endpoint: reveal it under Developers → Webhooks → the endpoint → Signing secret and "
        "store it with 'stripe set --signing-secret -'"
    )
    message = f"webhook endpoint {endpoint_id} exists: {what}; {secret_note}"
    if duplicates:
        message += f"; {duplicates} more endpoint(s) send to the same URL: delete them"
    version = endpoint.get("api_version")
    if version not in (None, STRIPE_API_VERSION):
        message += (
            f"; it uses API version {version} (ours is {STRIPE_API_VERSION}), which Stripe "
            "cannot change on an existing endpoint"
        )
    return {
        "action": "updated" if params else "unchanged",
        "endpoint": _endpoint_view(endpoint),
        "added_events": missing,
        "signing_secret_stored": has_secret,
        "message": message,
    }


def provision_webhook(rt: Runtime, merchant_id: str, env: str) -> dict[str, Any]:
    """Make Stripe send the 15 events to our URL; store the signing secret when we get one.

    Raises InvalidInput (API 422, CLI exit 2) for a live URL Stripe could not deliver to,
    LookupError without a data set, StripeProblem when Stripe says no or cannot be reached
    (after storing a report of it as the data set's health).
    """
    url = datasets.webhook_url(rt.settings.public_url, merchant_id, env)
    if env == "live":
        problem = live_url_problem(url)
        if problem:
            raise InvalidInput([FieldError("public_url", problem)])
    sc = connect(rt, merchant_id, env)
    try:
        ours = _find_ours(sc, url)
        result = _create(rt, sc, url) if not ours else _complete(rt, sc, ours[0], len(ours) - 1)
    except StripeProblem as problem:
        # Shown as the data set's health, like a verify that failed (failure_report.py).
        with db.write(rt.engine) as conn:
            stored = datasets.get(conn, merchant_id, env)
            previous = stored.verify_report if stored is not None else None
            problem.report = failure_report(
                "provision-webhook", problem, env, clock.now(), previous
            )
            datasets.record_verify_report(conn, merchant_id, env, problem.report)
        raise
    result["url"] = url
    return result
