"""Templates, security headers and HTML error pages of the web pages.

Every web route uses ``WebRoute``: whatever it answers (a page, a redirect, an error) leaves
with the same security headers, and errors become HTML pages instead of the API's JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from markupsafe import Markup, escape
from starlette.responses import RedirectResponse
from starlette.templating import Jinja2Templates

from merchant_backend import __version__, i18n
from merchant_backend.i18n import gettext as _
from merchant_backend.runtime import Runtime
from merchant_backend.validation import hide_secrets, looks_like_secret
from merchant_backend.web import decline_messages, destination_messages, verify_messages
from merchant_backend.web import flash as flashes
from merchant_backend.web import format as fmt

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

# No inline script or style at all: the pages load /static/app.js and /static/app.css only.
CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    # Pages show a merchant's private data: no cache keeps them after sign-out.
    "Cache-Control": "no-store",
}


# The reader's preferences: not secrets, so readable by the page's script (which sets the zone).
LANGUAGE_COOKIE = "mb_lang"
ZONE_COOKIE = "mb_tz"  # the browser's zone, set by /static/app.js
CHOSEN_ZONE_COOKIE = "mb_tz_chosen"  # a zone chosen on the preferences page wins
PREFERENCE_SECONDS = 365 * 86400

# Jinja's i18n extension: {% trans %} and _() in templates call i18n.gettext, which answers in
# the language of the request being rendered (set per request by WebRoute).
JINJA_OPTIONS: dict[str, Any] = {
    "extensions": ["jinja2.ext.i18n"],
    "trim_blocks": True,
    "lstrip_blocks": True,
}


class ShownOnce:
    """A secret a page shows on purpose, once: a destination's new signing secret right after
    it was made. ``_shown`` lets it through (it is not a str); it prints escaped."""

    def __init__(self, value: str) -> None:
        self._value = value

    def __html__(self) -> str:
        return str(escape(self._value))

    def __str__(self) -> str:
        return self._value


def _shown(value: Any) -> Any:
    """Every value a page prints: nothing shaped like a secret (``sk_live_…``, ``whsec_…``)
    is ever put back into a page, e.g. a secret key typed into the publishable key's field
    (issue 9)."""
    if isinstance(value, str) and looks_like_secret(value):
        hidden = hide_secrets(str(value))
        # Safe: already-safe markup with some [A-Za-z0-9_+/=-] runs replaced by "sk_live_…".
        return Markup(hidden) if isinstance(value, Markup) else hidden  # noqa: S704
    return value


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        finalize=_shown,
        undefined=jinja2.ChainableUndefined,
        **JINJA_OPTIONS,
    )
    env.install_gettext_callables(  # type: ignore[attr-defined]
        i18n.gettext, i18n.ngettext, newstyle=True
    )
    # translated: a message marked where it was made (N_), looked up as it is (no % filling).
    env.filters.update(
        money=fmt.money,
        when=fmt.when,
        iso=fmt.iso,
        label=fmt.label,
        translated=i18n.gettext,
        attempt_failure=destination_messages.attempt_failure,
        disabled_reason=destination_messages.disabled_reason,
        check_message=verify_messages.check_message,
        check_detail=verify_messages.check_detail,
        report_summary=verify_messages.report_summary,
        payment_error=decline_messages.payment_error,
    )
    env.policies["ext.i18n.trimmed"] = True  # {% trans %} blocks: whitespace collapsed
    env.globals.update(version=__version__)
    return env


def reader_of(request: Request) -> i18n.Reader:
    """The language (switch, else Accept-Language, else English) and zone (chosen, else the
    browser's, else UTC) this request's pages are written in."""
    cookies = request.cookies
    return i18n.Reader(
        language=i18n.negotiate(
            cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language")
        ),
        zone=i18n.valid_zone(cookies.get(CHOSEN_ZONE_COOKIE))
        or i18n.valid_zone(cookies.get(ZONE_COOKIE))
        or i18n.DEFAULT_ZONE,
    )


def _reader_context(request: Request) -> dict[str, Any]:
    # The switch links carry no path: /language goes back to the page it was clicked on (its
    # same-origin Referer), so no page repeats its own address (or an id from it) in its links.
    who = i18n.reader()
    return {
        "lang": who.language,
        "zone": who.zone,
        "language_links": [
            {
                "code": code,
                "name": i18n.LANGUAGE_NAMES[code],
                "href": f"/language?set={code}",
                "current": code == who.language,
            }
            for code in i18n.LANGUAGES
        ],
        "preferences_href": "/preferences",
    }


templates = Jinja2Templates(env=_env(), context_processors=[_reader_context])


class WebError(Exception):
    """Answer with an HTML error page."""

    def __init__(
        self,
        status: int,
        title: str,
        message: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.message = message
        self.headers = headers or {}


class SignInRequired(Exception):
    """No valid session: send the browser to the sign-in page."""


def not_found() -> WebError:
    # Another merchant's page looks exactly like a missing one.
    return WebError(
        404, _("Page not found"), _("There is no such page, or it is not yours to see.")
    )


def runtime_of(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def is_https(rt: Runtime) -> bool:
    return rt.settings.public_url.lower().startswith("https://")


def secure_headers(response: Response, rt: Runtime) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if is_https(rt):
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def page(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    """A page; a message an action left for it (flash.py) is shown once, beside its own."""
    rt = runtime_of(request)
    found = flashes.take(request, rt, str(context.get("csrf") or ""))
    if found is not None:
        context = dict(context)
        if found.notice and not context.get("notice"):
            context["notice"] = found.notice
        if found.problem and not context.get("problem"):
            context["problem"] = found.problem
            context["problem_detail"] = found.detail
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    if found is not None:
        flashes.clear(response, rt)
    return response


def redirect_with(
    request: Request,
    path: str,
    key: str,
    *,
    notice: str | None = None,
    problem: str | None = None,
    detail: str | None = None,
) -> RedirectResponse:
    """303 to ``path`` (may carry a query and a #fragment) with a message for that page;
    ``detail`` is the problem's English facts, shown beside it (``lang="en"``)."""
    target = path.split("#", 1)[0].split("?", 1)[0]
    response = redirect(path)
    flashes.put(
        response,
        runtime_of(request),
        key,
        target,
        notice=notice,
        problem=problem,
        detail=detail,
    )
    return response


def error_page(request: Request, exc: WebError) -> Response:
    response = page(
        request,
        "error.html",
        {"title": exc.title, "message": exc.message, "status": exc.status, "nav": None},
        status_code=exc.status,
    )
    response.headers.update(exc.headers)
    return response


def safe_next(path: str | None) -> str | None:
    """Only a path on this site (``/m/...``); never ``//host`` or a full URL."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return None
    return path


def redirect(path: str) -> RedirectResponse:
    # 303: after a form post the browser follows with GET (post/redirect/get).
    return RedirectResponse(path, status_code=303)


def sign_in_redirect(request: Request) -> RedirectResponse:
    target = request.url.path
    if request.method == "GET" and request.url.query:
        target += "?" + request.url.query
    if request.method != "GET" or target == "/":
        return redirect("/sign-in")
    return redirect("/sign-in?next=" + quote(target, safe=""))


class WebRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            with i18n.use(reader_of(request)):
                try:
                    response = await inner(request)
                except WebError as exc:
                    response = error_page(request, exc)
                except SignInRequired:
                    response = sign_in_redirect(request)
                except RequestValidationError:
                    response = error_page(
                        request,
                        WebError(400, _("Bad request"), _("The request could not be understood.")),
                    )
                response.headers.setdefault("Content-Language", i18n.reader().language)
                response.headers.setdefault("Vary", "Accept-Language, Cookie")
            return secure_headers(response, runtime_of(request))

        return handler
