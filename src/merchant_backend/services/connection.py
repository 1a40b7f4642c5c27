"""The data set's connection to Stripe: verify it, and provision its webhook endpoint."""

from __future__ import annotations

from merchant_backend import clock
from merchant_backend.errors import InvalidInput, NotFound, UpstreamFailure
from merchant_backend.runtime import Runtime
from merchant_backend.store import datasets, db
from merchant_backend.stripe import provision, verify
from merchant_backend.stripe.client import StripeConnection, connect
from merchant_backend.stripe.failure_report import failure_report
from merchant_backend.stripe.provision import ProvisionResult
from merchant_backend.stripe.verify import VerifyReport
from merchant_backend.vocabulary import HANDLED_EVENTS


def _store_failure(
    rt: Runtime, merchant_id: str, env: str, action: str, failure: UpstreamFailure
) -> None:
    """Keep a report of an attempt Stripe stopped as the data set's health, and attach it to
    the failure (failure_report.py), so the health never keeps saying "not verified"."""
    with db.write(rt.engine) as conn:
        stored = datasets.get(conn, merchant_id, env)
        previous = stored.verify_report if stored is not None else None
        failure.report = failure_report(action, failure, env, clock.now(), previous)
        datasets.record_verify_report(conn, merchant_id, env, failure.report)


def verify_data_set(rt: Runtime, merchant_id: str, env: str) -> VerifyReport:
    """Run the checks against Stripe, store the report as the data set's health, return it.

    When Stripe cannot be asked at all, a report of where it stopped is stored instead and the
    ``UpstreamFailure`` (with that report) propagates.
    """
    try:
        sc = connect(rt, merchant_id, env)
        with db.read(rt.engine) as conn:
            stored = datasets.get(conn, merchant_id, env)
        if stored is None:
            raise NotFound(f"no {env} data set for {merchant_id}")
        url = datasets.webhook_url(rt.settings.public_url, merchant_id, env)
        checks = verify.run_checks(sc, stored, url)
    except UpstreamFailure as failure:
        _store_failure(rt, merchant_id, env, "verify", failure)
        raise
    report = verify.report_of(checks, env, clock.now())
    with db.write(rt.engine) as conn:
        datasets.record_verify_report(conn, merchant_id, env, report.as_json())
    return report


def provision_webhook(rt: Runtime, merchant_id: str, env: str) -> ProvisionResult:
    """Make Stripe send the 15 events to our URL; store the signing secret when we get one.

    ``InvalidInput`` (on ``public_url``) for a live URL Stripe could not deliver to,
    ``NotFound`` without a data set, ``UpstreamFailure`` when Stripe says no or cannot be reached.
    """
    url = datasets.webhook_url(rt.settings.public_url, merchant_id, env)
    if env == "live":
        problem = provision.live_url_problem(url)
        if problem is not None:
            raise InvalidInput([problem])
    sc = connect(rt, merchant_id, env)
    try:
        return _provision(rt, sc, merchant_id, env, url)
    except UpstreamFailure as failure:
        _store_failure(rt, merchant_id, env, "provision-webhook", failure)
        raise
    finally:
        # Also after a failure: a secret may have been stored before Stripe stopped answering.
        rt.secret_cache.invalidate(merchant_id, env)


def _provision(
    rt: Runtime, sc: StripeConnection, merchant_id: str, env: str, url: str
) -> ProvisionResult:
    ours = provision.find_ours(sc, url)
    if not ours:
        endpoint = provision.create_endpoint(sc, url)
        secret = endpoint.get("secret")
        stored = isinstance(secret, str) and bool(secret)
        with db.write(rt.engine) as conn:
            current = datasets.get(conn, merchant_id, env)
            if stored and current is not None and current.signing_secret_hint:
                # Another endpoint may still sign with the old secret: keep it valid for a day.
                datasets.roll_signing_secret(conn, rt.keys.get(), merchant_id, env, str(secret))
            elif stored:
                datasets.set_signing_secret(conn, rt.keys.get(), merchant_id, env, str(secret))
            datasets.set_webhook_endpoint_id(conn, merchant_id, env, str(endpoint["id"]))
        result = ProvisionResult(
            action="created",
            endpoint=provision.endpoint_view(endpoint),
            added_events=list(HANDLED_EVENTS),
            signing_secret_stored=stored,
            message=provision.created_message(endpoint, url, stored),
            url=url,
        )
    else:
        done = provision.complete_endpoint(sc, ours[0])
        with db.write(rt.engine) as conn:
            current = datasets.get(conn, merchant_id, env)
            datasets.set_webhook_endpoint_id(conn, merchant_id, env, str(done.endpoint["id"]))
        has_secret = bool(current and current.signing_secret_hint)
        result = ProvisionResult(
            action="updated" if done.changed else "unchanged",
            endpoint=provision.endpoint_view(done.endpoint),
            added_events=done.added_events,
            signing_secret_stored=has_secret,
            message=provision.completed_message(done, has_secret, len(ours) - 1),
            url=url,
        )
    return result
