"""The report a verify or a webhook provisioning stores when a call to Stripe fails.

Without it, the health kept saying "not verified" after an attempt that failed, and the person
had only a message on the screen that the next page load lost. The report says which check (or
step) failed, what answered — Stripe's HTTP status, its error code and request id, and the API
base we called, so a wrong ``MERCHANT_BACKEND_STRIPE_API_BASE`` shows — and advice fitting the
status (errors.advice). Pure: the caller stores it.
"""

from __future__ import annotations

from typing import Any

from merchant_backend.errors import UpstreamFailure
from merchant_backend.stripe.errors import advice, advice_code

# The check of verify (verify.CHECK_NAMES) or the step of provision-webhook each call serves.
CHECK_OF_OPERATION = {
    "account.retrieve": "secret_key_accepted",
    "webhook_endpoints.list": "webhook_endpoint",
    "webhook_endpoints.create": "webhook_endpoint",
    "webhook_endpoints.update": "webhook_endpoint",
}


def stripe_error(problem: UpstreamFailure) -> dict[str, Any]:
    """What answered, as facts: for the report, the API's error body and the web page."""
    return {
        "status": problem.stripe_status,
        "code": problem.stripe_code or problem.code,
        "request_id": problem.request_id,
        "api_base": problem.api_base,
        "operation": problem.operation,
    }


def failure_report(
    action: str,
    problem: UpstreamFailure,
    env: str,
    at: float,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A report of an attempt that stopped on ``problem``; the same shape as verify's reports
    (``status``, ``summary``, ``checks``), plus ``action`` and ``stripe_error``. ``previous``
    is the stored report it replaces: the last complete verify in it is kept, so a page can
    say how the connection looked before Stripe stopped answering."""
    check = CHECK_OF_OPERATION.get(problem.operation or "", problem.operation or "stripe_call")
    base = problem.api_base or "Stripe"
    code = advice_code(problem.stripe_status, problem.code)
    # The check's words as a code and the values that fill them, for pages that write them in
    # their reader's language (web/verify_messages.py), as verify's own checks carry them.
    values: dict[str, Any] = {"api_base": base, "advice": code}
    if problem.stripe_status is None:
        # Nothing answered, or not in time: no status, code or request id to show.
        reason = "no_answer_in_time" if problem.code == "stripe_timeout" else "no_answer"
        late = f"{base} did not answer in time: " if reason == "no_answer_in_time" else ""
        message = late + advice(None, problem.code, base)
    else:
        reason = "answered"
        values |= {
            "status": problem.stripe_status,
            "stripe_code": problem.stripe_code,
            "request_id": problem.request_id,
        }
        facts = [f"HTTP {problem.stripe_status}"]
        if problem.stripe_code:
            facts.append(f"code {problem.stripe_code}")
        if problem.request_id:
            facts.append(f"request {problem.request_id}")
        if problem.stripe_status in (401, 403):
            # The message names the key and the permission: the advice, specific.
            todo = values["detail"] = problem.message
        else:
            todo = advice(problem.stripe_status, problem.code, base)
        message = f"{base} answered {', '.join(facts)}: {todo}"
    return {
        "status": "failed",
        "action": action,
        "summary": f"{action} stopped at {check}: {message}",
        "checks": [
            {
                "name": check,
                "status": "failed",
                "message": message,
                "reason": reason,
                "values": values,
            }
        ],
        "stripe_error": stripe_error(problem),
        "env": env,
        "checked_at": int(at),
        "previous": last_complete(previous),
    }


def last_complete(report: dict[str, Any] | None) -> dict[str, Any] | None:
    """The summary of the last verify that finished, from a stored report of either kind."""
    if report is None:
        return None
    if "stripe_error" in report:
        found = report.get("previous")
        return found if isinstance(found, dict) else None
    return {
        "status": report.get("status"),
        "summary": report.get("summary"),
        "checked_at": report.get("checked_at"),
    }
