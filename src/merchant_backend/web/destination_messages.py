"""What the Notifications page says when a destination form is refused, in the reader's language.

The checks (``outbound.ssrf`` for the URL, ``services.notifications`` for the other fields) keep
a reason code and its values beside their English message; here each code becomes a sentence
through gettext, as ``money.explain`` does for amounts. The English msgids are the API's
messages word for word, so the English page says what the API says (tests/test_i18n.py checks
every code has one). A refusal without a code here (none today) is shown as the English.
"""

from __future__ import annotations

from merchant_backend.i18n import N_, gettext
from merchant_backend.services.notifications import InvalidDestinationInput

MESSAGES = {
    # The URL (outbound.ssrf.REASONS).
    "too_long": N_("the URL is longer than 2000 characters"),
    "not_a_url": N_("not a URL: %(detail)s"),
    "scheme": N_("the URL must start with https://"),
    "live_needs_https": N_("a live destination must use https://"),
    "no_host": N_("the URL has no host"),
    "credentials": N_("the URL must not carry a user name or password"),
    "fragment": N_("the URL must not have a #fragment"),
    "unresolved_because": N_("%(host)s does not resolve: %(detail)s"),
    "unresolved": N_("%(host)s does not resolve"),
    "metadata": N_("%(host)s resolves to %(address)s is a cloud metadata address"),
    "not_host_address": N_("%(host)s resolves to %(address)s is not a host address"),
    "loopback": N_("%(host)s resolves to %(address)s is a loopback address"),
    "link_local": N_("%(host)s resolves to %(address)s is a link-local address"),
    "private": N_("%(host)s resolves to %(address)s is a private address"),
    # The other fields (services.notifications.REASONS).
    "url_missing": N_("a destination needs a URL"),
    "description_too_long": N_("at most 500 characters"),
    "object_types_unknown": N_("unknown: %(unknown)s (known: %(known)s)"),
    "object_types_none": N_("name at least one object type (or leave it out for all)"),
    "replay_what": N_("give a message id or a time since which to replay failed ones"),
}


def field_messages(exc: InvalidDestinationInput) -> dict[str, str]:
    """Each refused field's message in the language of the page being answered."""
    out = dict(exc.by_field)
    for field_name, refusal in exc.reasons.items():
        message = MESSAGES.get(refusal.reason)
        if message is not None:
            text = gettext(message)
            out[field_name] = text % refusal.values if refusal.values else text
    return out
