"""What the Stripe connection page says about a verify report, in the reader's language.

``stripe/verify.py`` keeps each check's English message (the API and CLI show it) and, beside
it, a ``reason`` code with the ``values`` that fill it; here each code becomes a sentence through
gettext, as ``destination_messages`` does for destinations. The English msgids are the API's
messages word for word, so the English page says what the API says. A report written when Stripe
could not be asked (``stripe/failure_report.py``) carries codes too, and its words are written
once, there: this page passes gettext to the same functions that wrote the API's message. For a
refused key or permission, Stripe's specific message is shown beside the advice, in English
(``check_detail``). A check without a reason (a report from before reasons) is shown as its
English message, and so is the summary of a report with such a check.
"""

from __future__ import annotations

from typing import Any

from merchant_backend.i18n import N_, gettext
from merchant_backend.stripe import failure_report as stopped
from merchant_backend.web import format as fmt

CHECKS = {
    "key_accepted": N_("Stripe accepted the secret key %(key)s"),
    "key_rejected": N_(
        "Stripe rejected the secret key for %(account)s (%(key)s): copy it again from "
        "Developers → API keys and save it in the %(env)s data set"
    ),
    "not_checked_key_rejected": N_("not checked: Stripe rejected the secret key"),
    "account_not_checked": N_(
        "not checked: Stripe rejected the secret key (see secret_key_accepted)"
    ),
    "account_permission": N_(
        "the restricted key may not read the account, so it is not known whether it belongs to "
        "%(account)s: grant it read access to the account under Developers → API keys → the key "
        "→ Edit"
    ),
    "account_permission_named": N_(
        "the restricted key may not read the account, so it is not known whether it belongs to "
        "%(account)s: grant it '%(permission)s' under Developers → API keys → the key → Edit"
    ),
    "account_mismatch": N_(
        "the secret key belongs to %(found)s, but the data set says %(account)s: copy the "
        "account id and keys from the same Stripe account"
    ),
    "account_ok": N_("the key belongs to %(account)s"),
    "modes_ok": N_("keys are %(want)s-mode keys, as %(env)s needs"),
    "modes_wrong": N_(
        "%(problems)s, but %(env)s needs %(want)s mode: copy the %(want)s-mode keys "
        "(sk_%(code)s_…, pk_%(code)s_…)"
    ),
    "endpoint_missing": N_(
        "no webhook endpoint sends to %(url)s: run provision-webhook, or add it under "
        "Developers → Webhooks"
    ),
    "endpoint_missing_elsewhere": N_(
        "no webhook endpoint sends to %(url)s (an endpoint sends to %(elsewhere)s: is "
        "MERCHANT_BACKEND_PUBLIC_URL right?): run provision-webhook, or add it under "
        "Developers → Webhooks"
    ),
    "endpoint_wrong": N_(
        "webhook endpoint %(endpoint_id)s: %(problems)s — run provision-webhook to fix it, or "
        "edit it under Developers → Webhooks"
    ),
    "endpoint_several": N_(
        "%(count)s endpoints send to %(url)s; only one signing secret is stored, so deliveries "
        "signed by the others are rejected: delete %(others)s"
    ),
    "endpoint_ok": N_("webhook endpoint %(endpoint_id)s is enabled and sends all %(total)s events"),
    "endpoints_permission": N_(
        "the restricted key may not list webhook endpoints, so the endpoint was not checked: "
        "grant it read access to webhook endpoints under Developers → API keys → the key → Edit"
    ),
    "endpoints_permission_named": N_(
        "the restricted key may not list webhook endpoints, so the endpoint was not checked: "
        "grant it '%(permission)s' under Developers → API keys → the key → Edit"
    ),
    "secret_missing": N_(
        "no webhook signing secret is stored: run provision-webhook, or paste the endpoint's "
        "signing secret from Developers → Webhooks"
    ),
    "secret_unproven": N_(
        "the signing secret has not verified a delivery yet: send a test event from "
        "Developers → Webhooks → the endpoint, or wait for the first payment"
    ),
    "secret_ok": N_("the signing secret verified a delivery, last at %(at)s"),
}
# The parts of "modes_wrong" and "endpoint_wrong", joined with "; ".
PARTS = {
    "secret_mode": N_("the secret key is a %(mode)s-mode key"),
    "publishable_mode": N_("the publishable key is a %(mode)s-mode key"),
    # A key of no known mode (as the API words it, article and all).
    "secret_mode_unknown": N_("the secret key is a unknown-mode key"),
    "publishable_mode_unknown": N_("the publishable key is a unknown-mode key"),
    "endpoint_mode": N_("the webhook endpoint is a %(mode)s-mode endpoint"),
    "endpoint_status": N_("it is %(status)s"),
    "missing": N_("it does not send %(count)s of the %(total)s events: %(missing)s"),
}
MODES = {"test": N_("test"), "live": N_("live")}
SUMMARIES = {
    "failed": N_("%(count)s of %(total)s checks failed (%(names)s): %(first)s"),
    "warning": N_("%(count)s warning(s) (%(names)s): %(first)s"),
    "ok": N_("all %(total)s checks passed"),
}


def _mode(code: str) -> str:
    return gettext(MODES[code]) if code in MODES else code


def _fill(reason: str, values: dict[str, Any]) -> dict[str, Any]:
    """The values as the sentence of ``reason`` shows them (modes, parts, a time)."""
    v = dict(values)
    if reason in ("modes_ok", "modes_wrong"):
        v["code"] = v.get("want", "")
        v["want"] = _mode(str(v.get("want", "")))
        v["env"] = fmt.label(v.get("env", ""))
    if reason == "modes_wrong":
        parts = [
            gettext(PARTS[f"{key}_unknown"])
            if v[key] == "unknown"
            else gettext(PARTS[key]) % {"mode": _mode(str(v[key]))}
            for key in ("secret_mode", "publishable_mode", "endpoint_mode")
            if v.get(key)
        ]
        v["problems"] = "; ".join(parts)
    if reason == "endpoint_wrong":
        parts = []
        if v.get("endpoint_status"):
            # Stripe's word for it ("disabled"), in the page's language where it has one.
            status = gettext(str(v["endpoint_status"]))
            parts.append(gettext(PARTS["endpoint_status"]) % {"status": status})
        if v.get("missing"):
            parts.append(
                gettext(PARTS["missing"])
                % {"count": v["missing_count"], "total": v["total"], "missing": v["missing"]}
            )
        v["problems"] = "; ".join(parts)
    if reason == "key_rejected":
        v["env"] = fmt.label(v.get("env", ""))
    if reason == "secret_ok":
        v["at"] = fmt.when(v.get("at"))
    return v


def check_message(check: dict[str, Any]) -> str:
    """One check of a stored report (its JSON), in the page's language."""
    reason = str(check.get("reason") or "")
    message = CHECKS.get(reason)
    if message is None and reason not in stopped.REASONS:
        return str(check.get("message", ""))
    values = check.get("values") or {}
    try:
        if message is None:
            return stopped.check_text(reason, values, gettext, detail_beside=True)
        return gettext(message) % _fill(reason, values)
    except (KeyError, TypeError, ValueError):  # a report written with other values: as stored
        return str(check.get("message", ""))


def check_detail(check: dict[str, Any]) -> str:
    """What Stripe said beside a translated check, in English (empty when the check says it
    all): the message of a refused key or permission in a report Stripe stopped."""
    if check.get("reason") not in stopped.REASONS:
        return ""
    detail = (check.get("values") or {}).get("detail")
    return str(detail) if detail else ""


def report_summary(report: dict[str, Any]) -> str:
    """A stored report's summary in the page's language; as stored when a check of it has no
    reason (its words would then be half English anyway)."""
    checks = report.get("checks") or []
    if not checks or any(not c.get("reason") for c in checks):
        return str(report.get("summary", ""))
    action = str(report.get("action"))
    if action in stopped.STOPPED:
        name = fmt.label(checks[0].get("name"))
        return stopped.summary_text(action, name, check_message(checks[0]), gettext)
    failed = [c for c in checks if c.get("status") == "failed"]
    warned = [c for c in checks if c.get("status") == "warning"]
    shown = failed or warned
    if not shown:
        return gettext(SUMMARIES["ok"]) % {"total": len(checks)}
    return gettext(SUMMARIES["failed" if failed else "warning"]) % {
        "count": len(shown),
        "total": len(checks),
        "names": ", ".join(fmt.label(c.get("name")) for c in shown),
        "first": check_message(shown[0]),
    }
