"""The domain's refusals and conflicts as a page says them, in the reader's language.

A ``DomainError`` (or a ``FieldError``) keeps its English ``message`` for the API and the CLI;
where it carries a ``reason``, the page turns that code and its ``values`` into a sentence
through gettext, as ``verify_messages`` does for a verify report. The English msgids are the
API's messages word for word (``tests/test_i18n.py`` fills each with the values its error
carries and compares), so an English page says what the API says. An error without a reason is
shown as its English message.
"""

from __future__ import annotations

from typing import Any

from merchant_backend.i18n import N_, gettext

MESSAGES = {
    # store/reconcile_state.already_running
    "reconcile_running": N_(
        "a reconcile for %(merchant_id)s/%(env)s is already running (started %(started)s, by "
        "%(holder)s); wait for it or retry after %(until)s"
    ),
    # store/inbox.replay
    "event_pruned": N_(
        "event %(event_id)s's body was removed after the retention period "
        "(MERCHANT_BACKEND_EVENT_RETENTION_DAYS): there is nothing left to replay"
    ),
    # services/once.earlier
    "form_in_flight": N_("this form is being sent already"),
    # stripe/provision.live_url_problem
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


def said(reason: str | None, values: dict[str, Any], message: str) -> str:
    """``message`` in the page's language when ``reason`` is one this page knows."""
    template = MESSAGES.get(reason or "")
    if template is None:
        return message
    try:
        return gettext(template) % values
    except (KeyError, TypeError, ValueError):  # values of another shape: as the API says it
        return message
