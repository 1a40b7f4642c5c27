"""The Stripe side of provisioning a data set's webhook endpoint.

The endpoint sends to ``MERCHANT_BACKEND_PUBLIC_URL/webhooks/stripe/{merchant}/{env}``, exactly
the 15 handled events, at the pinned API version. Stripe shows an endpoint's signing secret
only in the answer that creates it, so the use case (``services.connection``) stores it at once.
When an endpoint for that URL already exists, the missing events are added to it instead of
creating a second one (two endpoints would sign the same events with two secrets, and we can
keep only one).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from merchant_backend.errors import FieldError
from merchant_backend.i18n import N_
from merchant_backend.stripe.client import (
    STRIPE_API_VERSION,
    StripeConnection,
    as_json,
    post_options,
)
from merchant_backend.stripe.verify import missing_events
from merchant_backend.vocabulary import HANDLED_EVENTS

_LOCAL_NAMES = ("localhost", "localhost.localdomain")


# Why Stripe's live mode could not deliver to a URL (marked for the web pages, which say it in
# their reader's language).
LIVE_URL_PROBLEMS = {
    "live_url_not_https": N_(
        "live webhooks need an HTTPS URL, but MERCHANT_BACKEND_PUBLIC_URL gives %(url)s: "
        "set it to the public https:// address of this service"
    ),
    "live_url_this_machine": N_(
        "%(url)s points at this machine, which Stripe cannot reach: set "
        "MERCHANT_BACKEND_PUBLIC_URL to the public address of this service"
    ),
    "live_url_private": N_(
        "%(url)s is a loopback or private address, which Stripe cannot reach: set "
        "MERCHANT_BACKEND_PUBLIC_URL to the public address of this service"
    ),
}


def live_url_problem(url: str) -> FieldError | None:
    """Why Stripe's live mode could not deliver to ``url`` (None if it can), as a refusal of
    the setting ``public_url``. Pure."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https":
        reason = "live_url_not_https"
    elif not host or host in _LOCAL_NAMES or host.endswith(".localhost"):
        reason = "live_url_this_machine"
    else:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return None
        if not (ip.is_loopback or ip.is_unspecified or ip.is_private or ip.is_link_local):
            return None
        reason = "live_url_private"
    return FieldError.of("public_url", LIVE_URL_PROBLEMS[reason], {"url": url})


@dataclass(frozen=True)
class ProvisionResult:
    """What provisioning did: ``created``, ``updated`` or ``unchanged``, and what is left."""

    action: str
    endpoint: dict[str, Any]
    added_events: list[str]
    signing_secret_stored: bool
    message: str
    url: str

    def as_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "endpoint": dict(self.endpoint),
            "added_events": list(self.added_events),
            "signing_secret_stored": self.signing_secret_stored,
            "message": self.message,
            "url": self.url,
        }


def endpoint_view(endpoint: dict[str, Any]) -> dict[str, Any]:
    """What we show of an endpoint: never its secret."""
    keys = ("id", "url", "status", "enabled_events", "api_version", "livemode")
    return {k: endpoint.get(k) for k in keys}


def find_ours(sc: StripeConnection, url: str) -> list[dict[str, Any]]:
    """The endpoints that send to ``url``."""

    def fetch() -> list[dict[str, Any]]:
        page = sc.client.v1.webhook_endpoints.list(params={"limit": 100})
        return [as_json(e) for e in page.auto_paging_iter()]

    endpoints = sc.call("webhook_endpoints.list", "list the webhook endpoints", fetch)
    return [e for e in endpoints if str(e.get("url", "")).rstrip("/") == url]


def create_endpoint(sc: StripeConnection, url: str) -> dict[str, Any]:
    """A new endpoint with the 15 events; Stripe's answer carries its signing secret."""
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
    return as_json(created)


def created_message(endpoint: dict[str, Any], url: str, secret_stored: bool) -> str:
    if secret_stored:
        return (
            f"created webhook endpoint {endpoint['id']} for {url} with the "
            f"{len(HANDLED_EVENTS)} events; its signing secret is stored"
        )
    return (
        f"created webhook endpoint {endpoint['id']}, but Stripe returned no signing secret: "
        "reveal it under Developers → Webhooks → the endpoint and store it with 'stripe set'"
    )


@dataclass(frozen=True)
class Completed:
    endpoint: dict[str, Any]
    added_events: list[str]
    enabled_again: bool

    @property
    def changed(self) -> bool:
        return bool(self.added_events) or self.enabled_again


def complete_endpoint(sc: StripeConnection, endpoint: dict[str, Any]) -> Completed:
    """Add the events an existing endpoint lacks (keeping the merchant's others) and enable it."""
    endpoint_id = str(endpoint["id"])
    enabled = list(endpoint.get("enabled_events") or [])
    missing = missing_events(enabled)
    params: dict[str, Any] = {}
    if missing:
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
    return Completed(endpoint, missing, "disabled" in params)


def completed_message(done: Completed, has_secret: bool, duplicates: int) -> str:
    endpoint_id = str(done.endpoint["id"])
    steps = []
    if done.added_events:
        steps.append(f"added {len(done.added_events)} missing event(s)")
    if done.enabled_again:
        steps.append("enabled it again")
    what = " and ".join(steps) if steps else "it already sends all the events"
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
    version = done.endpoint.get("api_version")
    if version not in (None, STRIPE_API_VERSION):
        message += (
            f"; it uses API version {version} (ours is {STRIPE_API_VERSION}), which Stripe "
            "cannot change on an existing endpoint"
        )
    return message
