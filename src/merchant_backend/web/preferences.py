"""The reader's language and time zone: the switch on every page and the preferences page.

Both are remembered in cookies (``SameSite=Strict``, ``Secure`` on https, a year): the
language in ``mb_lang``, a chosen zone in ``mb_tz_chosen``. The browser's own zone comes in
``mb_tz``, written by ``/static/app.js`` from ``Intl.DateTimeFormat().resolvedOptions()``; a
chosen zone wins over it, and without either the pages show UTC. Changing them needs no
sign-in and changes only how pages read, so they are plain links and a GET form; each answers
with a redirect back to the page it came from (its same-origin ``Referer``), never elsewhere.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, Request, Response
from starlette.responses import RedirectResponse

from merchant_backend import i18n
from merchant_backend.i18n import gettext as _
from merchant_backend.web.layout import frame
from merchant_backend.web.render import (
    CHOSEN_ZONE_COOKIE,
    LANGUAGE_COOKIE,
    PREFERENCE_SECONDS,
    ZONE_COOKIE,
    WebRoute,
    is_https,
    page,
    redirect,
    runtime_of,
    safe_next,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)
BROWSER_ZONE = "browser"


def _back(request: Request, fallback: str = "/") -> str:
    """The page the person came from, if it is on this site; else ``fallback``."""
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc and referer.netloc != request.url.netloc:
        return fallback
    path = referer.path + (f"?{referer.query}" if referer.query else "")
    if path.startswith("/language"):
        return fallback
    return safe_next(path) or fallback


def _remember(request: Request, response: Response, name: str, value: str | None) -> None:
    secure = is_https(runtime_of(request))
    if value is None:
        response.delete_cookie(name, path="/", secure=secure, samesite="strict")
        return
    response.set_cookie(
        name,
        value,
        max_age=PREFERENCE_SECONDS,
        path="/",
        secure=secure,
        httponly=name != ZONE_COOKIE,  # the page's script writes the browser's zone
        samesite="strict",
    )


@router.get("/language")
def switch_language(request: Request, set: str = "") -> RedirectResponse:
    """The switch on every page: remember the language and go back to the page."""
    response = redirect(_back(request))
    if set in i18n.LANGUAGES:
        _remember(request, response, LANGUAGE_COOKIE, set)
    return response


@router.get("/preferences")
def preferences(request: Request, zone: str = "", back: str = "") -> Response:
    """Shows the choices; with ``zone`` (the form sent), remembers it and goes back."""
    if zone:
        target = safe_next(back) or "/"
        response = redirect(target)
        if zone == BROWSER_ZONE:
            _remember(request, response, CHOSEN_ZONE_COOKIE, None)
        elif i18n.valid_zone(zone):
            _remember(request, response, CHOSEN_ZONE_COOKIE, zone)
        return response
    who = i18n.reader()
    chosen = i18n.valid_zone(request.cookies.get(CHOSEN_ZONE_COOKIE))
    browser = i18n.valid_zone(request.cookies.get(ZONE_COOKIE))
    context = frame(
        None,
        title=_("Language and time zone"),
        zones=i18n.zone_names(),
        chosen_zone=chosen or BROWSER_ZONE,
        browser_zone=browser,
        shown_zone=who.zone,
        back=_back(request),
        example_time=i18n.when(1_796_133_780),
    )
    return page(request, "preferences.html", context)
