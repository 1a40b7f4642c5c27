"""Why a delivery attempt failed, written as English text and read back as a reason code.

An attempt's ``error`` (and a destination's ``disabled_reason``) is stored and shown by the API
as English text; the web pages say it in the reader's language. So the texts are written here
(``no_answer``, ``network`` …) and read back here (``reason_of``), the two side by side so they
cannot drift apart; the page turns the code into a sentence through gettext
(``web/destination_messages.py``) and keeps the technical detail (the operating system's or the
TLS library's own words) beside it. Rows written before this module (or texts it does not know)
read as ``other``, shown as they are.

Pure: no I/O (the one import from store/ is the text it writes for a user's switch-off).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from merchant_backend.outbound.ssrf import REASONS as REFUSALS
from merchant_backend.store.destinations import DISABLED_BY_USER

# --- writing -------------------------------------------------------------------------------


def no_answer(timeout: float) -> str:
    return f"TimeoutError: no answer within {timeout:g} s"


def network(exc: BaseException) -> str:
    """A connection, TLS or HTTP protocol error, as ``ExceptionName: message``."""
    return f"{type(exc).__name__}: {str(exc) or type(exc).__name__}"


def redirect(location: str) -> str:
    return f"redirect to {location[:200]} not followed"


def refused(why: object) -> str:
    """The address check (``outbound.ssrf``) refused the destination when it was sent."""
    return f"refused: {why}"


def secret_unreadable(why: object) -> str:
    return f"signing secret unreadable: {why}"


def auto_disabled(days: float, last: str) -> str:
    """A destination's ``disabled_reason`` once every delivery failed for ``days``."""
    return f"every delivery failed for {days:g} days; last: {last}"


# --- reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reason:
    """``code`` for the page's sentence, ``values`` to fill it, ``detail``: the rest of the
    text (technical, left in English) or "" when the sentence says it all."""

    code: str
    values: dict[str, str] = field(default_factory=dict)
    detail: str = ""


# Exception names (``network``) by what a reader needs to know. ssl's errors all end in Error
# and start with SSL; socket.gaierror is a failed name lookup.
_BY_EXCEPTION = {
    "ConnectionRefusedError": "connection_refused",
    "gaierror": "dns",
    "RemoteDisconnected": "disconnected",
    "ConnectionResetError": "disconnected",
    "ConnectionAbortedError": "disconnected",
    "BrokenPipeError": "disconnected",
    "IncompleteRead": "disconnected",
    "BadStatusLine": "bad_answer",
    "LineTooLong": "bad_answer",
    "TimeoutError": "timeout",
    "timeout": "timeout",
}
_UNREACHABLE = ("Network is unreachable", "No route to host", "Host is unreachable")

_NO_ANSWER = re.compile(r"TimeoutError: no answer within (?P<seconds>[0-9.e+]+) s")
_NETWORK = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*): (?P<message>.*)", re.DOTALL)
_REDIRECT = re.compile(r"redirect to (?P<location>.*) not followed", re.DOTALL)
_AUTO_DISABLED = re.compile(
    r"every delivery failed for (?P<days>[0-9.e+]+) days; last: (?P<last>.*)", re.DOTALL
)
_PREFIXED = (("refused: ", "refused"), ("signing secret unreadable: ", "secret_unreadable"))


def _pattern(template: str) -> re.Pattern[str]:
    """A refusal's English template (``%(host)s resolves to …``) as a regex that gives the
    values back."""
    parts = re.split(r"%\((\w+)\)s", template)
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>.+?)" for i, part in enumerate(parts)
    )
    return re.compile(regex, re.DOTALL)


# The address check's refusals (outbound.ssrf.REASONS), longest first: one template may be
# the start of another ("does not resolve" / "does not resolve: …").
_REFUSALS = sorted(
    ((code, _pattern(t)) for code, t in REFUSALS.items()), key=lambda c: -len(c[1].pattern)
)


def _refusal(text: str) -> Reason:
    for code, pattern in _REFUSALS:
        if m := pattern.fullmatch(text):
            return Reason("refused", {"refusal": code, **m.groupdict()})
    return Reason("refused", detail=text)


def reason_of(text: str) -> Reason:
    """The reason code of an attempt's ``error``, as written by the functions above; for a
    refusal by the address check, ``values["refusal"]`` is its own code (``ssrf.REASONS``)
    and the rest of ``values`` what its message was made of."""
    if m := _NO_ANSWER.fullmatch(text):
        return Reason("no_answer", {"seconds": m["seconds"]})
    if m := _REDIRECT.fullmatch(text):
        return Reason("redirect", {"location": m["location"]})
    for prefix, prefixed in _PREFIXED:
        if text.startswith(prefix):
            rest = text[len(prefix) :]
            return _refusal(rest) if prefixed == "refused" else Reason(prefixed, detail=rest)
    if m := _NETWORK.fullmatch(text):
        name, message = m["name"], m["message"]
        code = _BY_EXCEPTION.get(name)
        if code is None and name.startswith("SSL") and name.endswith("Error"):
            code = "tls"
        if code is None and any(u in message for u in _UNREACHABLE):
            code = "unreachable"
        if code is not None:
            return Reason(code, detail=text)
    return Reason("other", detail=text)


def disabled_reason_of(text: str) -> Reason:
    """The reason code of a destination's ``disabled_reason``: switched off after failing for
    days (``values["last"]`` is the last attempt's error, itself for ``reason_of``), by a
    user, or a reason a person wrote (``other``: shown as written)."""
    if m := _AUTO_DISABLED.fullmatch(text):
        return Reason("auto_disabled", {"days": m["days"], "last": m["last"]})
    if text == DISABLED_BY_USER:
        return Reason("disabled_by_user")
    return Reason("other", detail=text)
