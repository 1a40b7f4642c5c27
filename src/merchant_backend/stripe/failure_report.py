"""The report a verify or a webhook provisioning stores when a call to Stripe fails.

Without it, the health kept saying "not verified" after an attempt that failed, and the person
had only a message on the screen that the next page load lost. The report says which check (or
step) failed, what answered — Stripe's HTTP status, its error code and request id, and the API
base we called, so a wrong ``MERCHANT_BACKEND_STRIPE_API_BASE`` shows — and advice fitting the
status (errors.advice). Pure: the caller stores it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from merchant_backend.errors import UpstreamFailure
from merchant_backend.i18n import N_
from merchant_backend.stripe.errors import ADVICE, advice_code

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


# The words of a report, written once: the API says them in English; a page passes gettext
# (web/verify_messages.py) and says them in its reader's language.
STOPPED = {
    "verify": N_("verify stopped at %(name)s: %(first)s"),
    "provision-webhook": N_("provision-webhook stopped at %(name)s: %(first)s"),
}
LATE = N_("%(api_base)s did not answer in time: %(advice)s")
ANSWERED = N_("%(api_base)s answered %(facts)s: %(advice)s")
FACTS = (("stripe_code", N_("code %(stripe_code)s")), ("request_id", N_("request %(request_id)s")))
# A check's ``reason``: nothing answered, nothing in time, or Stripe answered with an error.
REASONS = frozenset({"no_answer", "no_answer_in_time", "answered"})


def _as_is(text: str) -> str:
    return text


def check_text(
    reason: str,
    values: dict[str, Any],
    translate: Callable[[str], str] = _as_is,
    *,
    detail_beside: bool = False,
) -> str:
    """A failed check's words from its ``reason`` and ``values``. Pure.

    ``detail`` (Stripe's message for a refused key or permission) takes the advice's place, as
    the API says it, unless the caller shows it beside the sentence (``detail_beside``).
    """
    base = values["api_base"]
    advice = translate(ADVICE[values["advice"]]) % {"api_base": base}
    if reason == "no_answer":
        return advice
    if reason == "no_answer_in_time":
        return translate(LATE) % {"api_base": base, "advice": advice}
    facts = [f"HTTP {values['status']}"]
    facts += [translate(text) % values for key, text in FACTS if values.get(key)]
    todo = advice if detail_beside or not values.get("detail") else str(values["detail"])
    return translate(ANSWERED) % {"api_base": base, "facts": ", ".join(facts), "advice": todo}


def summary_text(
    action: str, name: str, first: str, translate: Callable[[str], str] = _as_is
) -> str:
    """The report's summary: where ``action`` stopped, and its failed check's words. Pure."""
    return translate(STOPPED[action]) % {"name": name, "first": first}


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
    say how the connection looked before Stripe stopped answering. The check carries its
    words as a ``reason`` and ``values`` too, as verify's own checks do."""
    check = CHECK_OF_OPERATION.get(problem.operation or "", problem.operation or "stripe_call")
    values: dict[str, Any] = {
        "api_base": problem.api_base or "Stripe",
        "advice": advice_code(problem.stripe_status, problem.code),
    }
    if problem.stripe_status is None:
        # Nothing answered, or not in time: no status, code or request id to show.
        reason = "no_answer_in_time" if problem.code == "stripe_timeout" else "no_answer"
    else:
        reason = "answered"
        values |= {
            "status": problem.stripe_status,
            "stripe_code": problem.stripe_code,
            "request_id": problem.request_id,
        }
        if problem.stripe_status in (401, 403):
            # The message names the key and the permission: the advice, specific.
            values["detail"] = problem.message
    message = check_text(reason, values)
    return {
        "status": "failed",
        "action": action,
        "summary": summary_text(action, check, message),
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
