"""What the Notifications pages say in the reader's language: why a destination form was refused,
why a delivery attempt failed, and why a destination was switched off.

The checks (``outbound.ssrf`` for the URL, ``services.notifications`` for the other fields) keep
a reason code and its values beside their English message; here each code becomes a sentence
through gettext, as ``money.explain`` does for amounts. The texts are marked ``N_`` where the
checks write them, so the English page says what the API says, word for word. A refusal
without a code here (none today) is shown as the English.
"""

from __future__ import annotations

from merchant_backend.i18n import N_, gettext
from merchant_backend.outbound import failures, ssrf
from merchant_backend.services import notifications
from merchant_backend.services.notifications import InvalidDestinationInput
from merchant_backend.web.format import Failure

# Each refusal's English text, marked where the checks write it: the page translates the same.
MESSAGES = {**ssrf.REASONS, **notifications.REASONS}


def field_messages(exc: InvalidDestinationInput) -> dict[str, str]:
    """Each refused field's message in the language of the page being answered."""
    out = dict(exc.by_field)
    for field_name, refusal in exc.reasons.items():
        message = MESSAGES.get(refusal.reason)
        if message is not None:
            text = gettext(message)
            out[field_name] = text % refusal.values if refusal.values else text
    return out


# Why an attempt failed (outbound.failures.reason_of): what the reader needs to do something
# about it; the technical text (the operating system's words) is shown beside it, as it is.
FAILURES = {
    "no_answer": N_("no answer within %(seconds)s s"),
    "timeout": N_("no answer in time"),
    "redirect": N_("redirect to %(location)s not followed"),
    "refused": N_("refused by the address check"),
    "secret_unreadable": N_(
        "the signing secret could not be decrypted (is the master key the one it was stored with?)"
    ),
    "connection_refused": N_("connection refused: nothing listens at that address and port"),
    "dns": N_("the host name does not resolve"),
    "disconnected": N_("the receiver closed the connection without an answer"),
    "bad_answer": N_("the answer was not valid HTTP"),
    "tls": N_("TLS failed (certificate or handshake)"),
    "unreachable": N_("the network cannot reach the receiver"),
    # Why a destination is switched off (outbound.failures.disabled_reason_of).
    "auto_disabled": N_("every delivery failed for %(days)s days; last: %(last)s"),
    "disabled_by_user": N_("switched off by hand"),
}


def _said(reason: failures.Reason) -> Failure:
    message = FAILURES.get(reason.code)
    if message is None:  # "other": a text nobody wrote here, shown as it is
        return Failure(reason.detail)
    text = gettext(message)
    values = dict(reason.values)
    refusal = values.pop("refusal", None)
    if refusal is not None:  # the address check's own sentence, as the form would say it
        why = gettext(MESSAGES[refusal])
        return Failure(f"{text}: {why % values if values else why}", reason.detail)
    return Failure(text % values if values else text, reason.detail)


def attempt_failure(error: str) -> Failure:
    """An attempt's stored ``error`` (or a delivery's ``last_error``) for the page."""
    return _said(failures.reason_of(error))


def disabled_reason(text: str) -> Failure:
    """A destination's ``disabled_reason`` for the page; switched off after failing for days,
    it names the last attempt's failure in the reader's language too."""
    reason = failures.disabled_reason_of(text)
    if reason.code != "auto_disabled":
        return _said(reason)
    last = attempt_failure(reason.values["last"])
    filled = failures.Reason(reason.code, {**reason.values, "last": last.summary})
    return Failure(_said(filled).summary, last.detail)
