"""The language and time zone a person reads a page in, and the translations (issue 12).

- Languages: English (the source text, written in the code and templates) and German (the
  catalogue ``locale/de/LC_MESSAGES/messages.po``). Which one: the page's switch (remembered in
  a cookie), else the browser's ``Accept-Language``, else English (``negotiate``).
- Catalogues are read from the ``.po`` file with Babel when first needed (a few milliseconds,
  once per process), not from a compiled ``.mo``: a fresh clone works with nothing to compile
  and nothing generated to keep in git, and the ``.po`` stays the one file a translator edits.
- Marked messages (``_("…")``, ``ngettext``; ``N_`` for a constant translated where it is used)
  are translated into the language of the request being answered: the web adapter sets it for
  each request with ``use``; the API and the CLI never do, so they stay English.
- Formats follow the language: British English (``1 Dec 2026, 14:03``, ``€12.50``) and German
  (``01.12.2026, 14:03``, ``12,50 €``) — our merchants are European.
- Time zone: the one the person chose, else their browser's, else UTC; always an IANA name this
  machine's zone data knows (``valid_zone``), anything else is UTC.
"""

from __future__ import annotations

import gettext as _gettext
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo, available_timezones

from babel.dates import format_date, format_time, get_timezone_gmt
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LANGUAGES = ("en", "de")
DEFAULT_LANGUAGE = "en"
# What each language is called in itself (the switch shows them so).
LANGUAGE_NAMES = {"en": "English", "de": "Deutsch"}
# The Babel locale whose number and date formats a language's pages use.
FORMAT_LOCALES = {"en": "en_GB", "de": "de_DE"}
DEFAULT_ZONE = "UTC"
CATALOGUES = Path(__file__).resolve().parent / "locale"
DOMAIN = "messages"


@dataclass(frozen=True)
class Reader:
    """How one request's pages are written: the language and the time zone."""

    language: str = DEFAULT_LANGUAGE
    zone: str = DEFAULT_ZONE

    @property
    def locale(self) -> str:
        return FORMAT_LOCALES[self.language]


ENGLISH_UTC = Reader()
_current: ContextVar[Reader | None] = ContextVar("merchant_backend_reader", default=None)


def reader() -> Reader:
    """The language and zone of the request being answered (English and UTC outside one)."""
    return _current.get() or ENGLISH_UTC


@contextmanager
def use(who: Reader) -> Iterator[Reader]:
    """Answer in ``who``'s language and zone for the duration of the block."""
    token = _current.set(who)
    try:
        yield who
    finally:
        _current.reset(token)


# ----------------------------------------------------------------------------- catalogues


def catalogue_path(language: str) -> Path:
    return CATALOGUES / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def translations(language: str) -> _gettext.NullTranslations:
    """The language's translations, compiled in memory from its ``.po`` (fuzzy ones left out)."""
    if language == DEFAULT_LANGUAGE or language not in LANGUAGES:
        return _gettext.NullTranslations()
    with catalogue_path(language).open("rb") as po:
        catalog = read_po(po, locale=language, domain=DOMAIN)
    compiled = BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)
    compiled.seek(0)
    return _gettext.GNUTranslations(compiled)


def gettext(message: str) -> str:
    """``message`` in the current reader's language."""
    return translations(reader().language).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(reader().language).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Marks a constant for the catalogue; it is translated with ``gettext`` where it is shown."""
    return message


_ = gettext


# ----------------------------------------------------------------------------- choosing


_ACCEPT_ITEM = re.compile(
    r"^\s*([A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*|\*)\s*(?:;\s*q\s*=\s*([01](?:\.[0-9]{0,3})?))?\s*$"
)


def from_accept_language(header: str | None) -> str | None:
    """The first of our languages the browser asks for (by its q order), or None."""
    wanted: list[tuple[float, int, str]] = []
    for position, item in enumerate((header or "")[:500].split(",")):
        match = _ACCEPT_ITEM.match(item)
        if not match:
            continue  # not a language range with a valid weight: ignored
        q = float(match.group(2)) if match.group(2) else 1.0
        if q > 0:
            wanted.append((-q, position, match.group(1).split("-")[0].lower()))
    for _q, _position, primary in sorted(wanted):
        if primary in LANGUAGES:
            return primary
    return None


def negotiate(chosen: str | None, accept_language: str | None) -> str:
    """The switch's choice if it is one of ours, else the browser's, else English."""
    if chosen in LANGUAGES:
        return str(chosen)
    return from_accept_language(accept_language) or DEFAULT_LANGUAGE


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def valid_zone(name: str | None) -> str | None:
    """``name`` if it is an IANA time zone this machine knows (``Europe/Berlin``), else None."""
    if name and len(name) <= 64 and name in _zones():
        return name
    return None


def zone_names() -> list[str]:
    """Every zone a person can choose, sorted, UTC first."""
    return [DEFAULT_ZONE, *sorted(z for z in _zones() if z != DEFAULT_ZONE and "/" in z)]


# ----------------------------------------------------------------------------- formats


def when(ts: float, who: Reader | None = None) -> str:
    """A unix time for the reader: ``1 Dec 2026, 14:03 UTC`` / ``01.12.2026, 15:03 MEZ``."""
    who = who or reader()
    zone = ZoneInfo(who.zone)
    at = datetime.fromtimestamp(ts, UTC).astimezone(zone)
    date = format_date(at, "medium", locale=who.locale)
    time = format_time(at, "short", locale=who.locale)
    label = format_time(at, "z", locale=who.locale)  # UTC, CET, MEZ…
    if len(label) > 5:  # a long name ("Eastern Standard Time"): the offset reads better
        label = get_timezone_gmt(at, "long", locale=who.locale)  # GMT-05:00
    return f"{date}, {time} {label}"


def day(ts: float, who: Reader | None = None) -> str:
    """A unix time's day for the reader, short (``1 Dec`` / ``1. Dez.``), for chart axes."""
    who = who or reader()
    at = datetime.fromtimestamp(ts, UTC)
    return str(format_date(at, "d MMM", locale=who.locale))
