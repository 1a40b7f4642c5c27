"""Check a data set against Stripe and store the report its health shows.

The checks, each ``ok``/``warning``/``failed`` with a message that says what to do:

- ``secret_key_accepted``: Stripe authenticates the secret key;
- ``account_matches``: the key belongs to the stored account id (``GET /v1/account``); a
  restricted key that may not read the account is a warning naming the permission;
- ``key_modes``: both keys (and the webhook endpoint, when found) are in the environment's mode;
- ``webhook_endpoint``: an endpoint for our URL exists, is enabled and sends all 15 events;
- ``signing_secret_verified``: the stored signing secret has verified a real delivery.

Stripe's verdicts on the checks make the report. When Stripe cannot be asked (an address
without the endpoint, network, timeout, rate limit, outage) the use case
(``services.connection.verify_data_set``) stores a report naming the check it stopped at, what
answered and what to do (failure_report.py), and raises the failure with that report attached,
so the health never keeps saying "not verified" after an attempt.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from merchant_backend.errors import UpstreamFailure
from merchant_backend.store.datasets import StoredDataSet
from merchant_backend.stripe.client import StripeConnection, as_json
from merchant_backend.stripe.failure_report import stripe_error
from merchant_backend.validation import MODE
from merchant_backend.vocabulary import HANDLED_EVENTS

OK, WARNING, FAILED = "ok", "warning", "failed"
CHECK_NAMES = (
    "secret_key_accepted",
    "account_matches",
    "key_modes",
    "webhook_endpoint",
    "signing_secret_verified",
)
# Stripe's own verdicts on our request; anything else means "could not ask".
_VERDICTS = ("stripe_key_rejected", "stripe_permission_denied")


@dataclass(frozen=True)
class Check:
    """``message`` is English (the API and CLI show it); ``reason`` and ``values`` say the same
    as a code and what fills it, so a page can write it in its reader's language
    (``web/verify_messages.py``)."""

    name: str
    status: str
    message: str
    details: dict[str, Any] | None = None
    reason: str = ""
    values: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "status": self.status, "message": self.message}
        if self.details:
            out.update(self.details)
        if self.reason:
            out["reason"] = self.reason
            out["values"] = dict(self.values or {})
        return out


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def missing_events(enabled: Iterable[str]) -> list[str]:
    """The handled events an endpoint does not send, in our order ('*' sends all)."""
    have = set(enabled)
    if "*" in have:
        return []
    return [e for e in HANDLED_EVENTS if e not in have]


def check_key_modes(
    env: str, secret_mode: str, publishable_mode: str, endpoint_livemode: bool | None
) -> Check:
    want = MODE[env]
    problems = []
    if secret_mode != want:
        problems.append(f"the secret key is a {secret_mode or 'unknown'}-mode key")
    if publishable_mode != want:
        problems.append(f"the publishable key is a {publishable_mode or 'unknown'}-mode key")
    if endpoint_livemode is not None and endpoint_livemode != (env == "live"):
        problems.append(
            f"the webhook endpoint is a {'live' if endpoint_livemode else 'test'}-mode endpoint"
        )
    endpoint_mode = (
        ("live" if endpoint_livemode else "test")
        if endpoint_livemode is not None and endpoint_livemode != (env == "live")
        else ""
    )
    values = {"env": env, "want": want}
    if problems:
        return Check(
            "key_modes",
            FAILED,
            f"{'; '.join(problems)}, but {env} needs {want} mode: copy the {want}-mode keys "
            f"(sk_{want}_…, pk_{want}_…)",
            reason="modes_wrong",
            values={
                **values,
                # The wrong ones only ("" where the mode is right).
                "secret_mode": (secret_mode or "unknown") if secret_mode != want else "",
                "publishable_mode": (publishable_mode or "unknown")
                if publishable_mode != want
                else "",
                "endpoint_mode": endpoint_mode,
            },
        )
    return Check(
        "key_modes",
        OK,
        f"keys are {want}-mode keys, as {env} needs",
        reason="modes_ok",
        values=values,
    )


def check_endpoint(url: str, endpoints: list[dict[str, Any]]) -> tuple[Check, bool | None]:
    """The webhook check from Stripe's list of endpoints; also the endpoint's livemode."""
    ours = [e for e in endpoints if str(e.get("url", "")).rstrip("/") == url]
    if not ours:
        path = url.split("/webhooks/", 1)[-1]
        elsewhere = [str(e.get("url")) for e in endpoints if str(e.get("url", "")).endswith(path)]
        hint = (
            f" (an endpoint sends to {elsewhere[0]}: is MERCHANT_BACKEND_PUBLIC_URL right?)"
            if elsewhere
            else ""
        )
        return (
            Check(
                "webhook_endpoint",
                FAILED,
                f"no webhook endpoint sends to {url}{hint}: run provision-webhook, or add it "
                "under Developers → Webhooks",
                reason="endpoint_missing_elsewhere" if elsewhere else "endpoint_missing",
                values={"url": url, "elsewhere": elsewhere[0] if elsewhere else ""},
            ),
            None,
        )
    endpoint = ours[0]
    endpoint_id = str(endpoint.get("id"))
    missing = missing_events(endpoint.get("enabled_events") or [])
    problems = []
    if endpoint.get("status") != "enabled":
        problems.append(f"it is {endpoint.get('status') or 'not enabled'}")
    if missing:
        problems.append(
            f"it does not send {len(missing)} of the {len(HANDLED_EVENTS)} events: "
            + ", ".join(missing)
        )
    details: dict[str, Any] = {"endpoint_id": endpoint_id, "missing_events": missing}
    livemode = endpoint.get("livemode")
    livemode = livemode if isinstance(livemode, bool) else None
    if problems:
        return (
            Check(
                "webhook_endpoint",
                FAILED,
                f"webhook endpoint {endpoint_id}: {'; '.join(problems)} — run provision-webhook "
                "to fix it, or edit it under Developers → Webhooks",
                details,
                reason="endpoint_wrong",
                values={
                    "endpoint_id": endpoint_id,
                    # "" when enabled; else Stripe's word for it.
                    "endpoint_status": ""
                    if endpoint.get("status") == "enabled"
                    else str(endpoint.get("status") or "not enabled"),
                    "missing": ", ".join(missing),
                    "missing_count": len(missing),
                    "total": len(HANDLED_EVENTS),
                },
            ),
            livemode,
        )
    if len(ours) > 1:
        others = ", ".join(str(e.get("id")) for e in ours[1:])
        return (
            Check(
                "webhook_endpoint",
                WARNING,
                f"{len(ours)} endpoints send to {url}; only one signing secret is stored, so "
                f"deliveries signed by the others are rejected: delete {others}",
                details,
                reason="endpoint_several",
                values={"count": len(ours), "url": url, "others": others},
            ),
            livemode,
        )
    return (
        Check(
            "webhook_endpoint",
            OK,
            f"webhook endpoint {endpoint_id} is enabled and sends all {len(HANDLED_EVENTS)} events",
            details,
            reason="endpoint_ok",
            values={"endpoint_id": endpoint_id, "total": len(HANDLED_EVENTS)},
        ),
        livemode,
    )


def check_signing_secret(stored: StoredDataSet) -> Check:
    name = "signing_secret_verified"
    if not stored.signing_secret_hint:
        return Check(
            name,
            FAILED,
            "no webhook signing secret is stored: run provision-webhook, or paste the endpoint's "
            "signing secret from Developers → Webhooks",
            reason="secret_missing",
        )
    if stored.last_delivery_at is None:
        return Check(
            name,
            WARNING,
            "the signing secret has not verified a delivery yet: send a test event from "
            "Developers → Webhooks → the endpoint, or wait for the first payment",
            reason="secret_unproven",
        )
    return Check(
        name,
        OK,
        f"the signing secret verified a delivery, last at {_iso(stored.last_delivery_at)}",
        {"last_delivery_at": int(stored.last_delivery_at)},
        reason="secret_ok",
        values={"at": int(stored.last_delivery_at)},
    )


def summarise(checks: list[Check]) -> tuple[str, str]:
    failed = [c for c in checks if c.status == FAILED]
    warned = [c for c in checks if c.status == WARNING]
    if failed:
        names = ", ".join(c.name for c in failed)
        return (
            FAILED,
            f"{len(failed)} of {len(checks)} checks failed ({names}): {failed[0].message}",
        )
    if warned:
        names = ", ".join(c.name for c in warned)
        return WARNING, f"{len(warned)} warning(s) ({names}): {warned[0].message}"
    return OK, f"all {len(checks)} checks passed"


def _ask(fn: Any) -> tuple[Any, UpstreamFailure | None]:
    """Stripe's answer or its verdict; a failure to ask at all propagates."""
    try:
        return fn(), None
    except UpstreamFailure as problem:
        if problem.code in _VERDICTS:
            return None, problem
        raise


def _account_checks(sc: StripeConnection) -> tuple[list[Check], bool]:
    account, problem = _ask(
        lambda: sc.call(
            "account.retrieve", "read the account", lambda: sc.client.v1.accounts.retrieve_current()
        )
    )
    if problem is not None and problem.code == "stripe_key_rejected":
        return [
            Check(
                "secret_key_accepted",
                FAILED,
                problem.message,
                {"stripe_error": stripe_error(problem)},
                reason="key_rejected",
                values={"account": sc.account_id, "key": sc.key_hint, "env": sc.env},
            ),
            Check(
                "account_matches",
                FAILED,
                "not checked: Stripe rejected the secret key (see secret_key_accepted)",
                reason="account_not_checked",
            ),
        ], False
    accepted = Check(
        "secret_key_accepted",
        OK,
        f"Stripe accepted the secret key {sc.key_hint}",
        reason="key_accepted",
        values={"key": sc.key_hint},
    )
    if problem is not None:
        permission = problem.extra.get("permission")
        return [
            accepted,
            Check(
                "account_matches",
                WARNING,
                "the restricted key may not read the account, so it is not known whether it "
                f"belongs to {sc.account_id}: grant it "
                f"{repr(permission) if permission else 'read access to the account'} under "
                "Developers → API keys → the key → Edit",
                {"permission": permission, "stripe_error": stripe_error(problem)},
                reason="account_permission_named" if permission else "account_permission",
                values={"account": sc.account_id, "permission": permission or ""},
            ),
        ], True
    found = as_json(account).get("id")
    if found != sc.account_id:
        return [
            accepted,
            Check(
                "account_matches",
                FAILED,
                f"the secret key belongs to {found}, but the data set says {sc.account_id}: "
                "copy the account id and keys from the same Stripe account",
                {"stripe_account_id": found},
                reason="account_mismatch",
                values={"found": str(found), "account": sc.account_id},
            ),
        ], True
    matches = Check(
        "account_matches",
        OK,
        f"the key belongs to {sc.account_id}",
        reason="account_ok",
        values={"account": sc.account_id},
    )
    return [accepted, matches], True


def _list_endpoints(sc: StripeConnection) -> list[dict[str, Any]]:
    page = sc.client.v1.webhook_endpoints.list(params={"limit": 100})
    return [as_json(e) for e in page.auto_paging_iter()]


def run_checks(sc: StripeConnection, stored: StoredDataSet, url: str) -> list[Check]:
    """Ask Stripe; ``UpstreamFailure`` when it cannot be asked (not a verdict)."""
    env = sc.env
    checks, key_ok = _account_checks(sc)
    livemode: bool | None = None
    if not key_ok:
        endpoint_check = Check(
            "webhook_endpoint",
            FAILED,
            "not checked: Stripe rejected the secret key",
            reason="not_checked_key_rejected",
        )
    else:
        endpoints, problem = _ask(
            lambda: sc.call(
                "webhook_endpoints.list", "list the webhook endpoints", lambda: _list_endpoints(sc)
            )
        )
        if problem is not None:
            permission = problem.extra.get("permission")
            grant = repr(permission) if permission else "read access to webhook endpoints"
            endpoint_check = Check(
                "webhook_endpoint",
                WARNING,
                "the restricted key may not list webhook endpoints, so the endpoint was not "
                f"checked: grant it {grant} under Developers → API keys → the key → Edit",
                {"permission": permission, "stripe_error": stripe_error(problem)},
                reason="endpoints_permission_named" if permission else "endpoints_permission",
                values={"permission": permission or ""},
            )
        else:
            endpoint_check, livemode = check_endpoint(url, endpoints)
    checks.append(check_key_modes(env, sc.secret_key_mode, sc.publishable_key_mode, livemode))
    checks.append(endpoint_check)
    checks.append(check_signing_secret(stored))
    return checks


@dataclass(frozen=True)
class VerifyReport:
    """The checks and their verdict, stored as the data set's health."""

    status: str
    summary: str
    checks: tuple[Check, ...]
    env: str
    checked_at: int

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "summary": self.summary,
            "checks": [c.as_json() for c in self.checks],
            "env": self.env,
            "checked_at": self.checked_at,
        }


def report_of(checks: list[Check], env: str, at: float) -> VerifyReport:
    status, summary = summarise(checks)
    return VerifyReport(status, summary, tuple(checks), env, int(at))
