"""A message carried across a redirect: every web action answers with POST/redirect/GET.

A form post that does something (verify, create the webhook, capture …) answers with a 303 to
the page that shows the result, so reloading that page never repeats the action. What went
well or wrong travels in a short-lived cookie that the next page of the same session shows
once and clears.

The cookie is signed with the session's CSRF token (a secret of the session, only ever written
into its own pages), so nothing but our own answers can put words on a merchant's page — not
another site, and not another program on the same host (cookies do not keep ports apart). It
names the path it is for, lives a minute, and holds text only; the page escapes it like any
other text.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, replace

from fastapi import Request, Response

from merchant_backend.runtime import Runtime

COOKIE = "mb_flash"
SECONDS = 60
MAX_TEXT = 1500  # a cookie holds about 4 KB; Stripe's messages are far shorter
# Browsers drop a cookie whose name and value pass 4,096 bytes (and the message with it): the
# encoded value stays under this, the English detail shortened first, then the problem.
MAX_VALUE = 3_800


@dataclass(frozen=True)
class Flash:
    path: str
    notice: str | None = None
    problem: str | None = None
    detail: str | None = None  # the problem's English facts (web/outcomes.py)


def is_https(rt: Runtime) -> bool:
    return rt.settings.public_url.lower().startswith("https://")


def cookie_name(rt: Runtime) -> str:
    return f"__Host-{COOKIE}" if is_https(rt) else COOKIE


def _sign(payload: bytes, key: str) -> str:
    return hmac.new(key.encode(), b"mb-flash:" + payload, hashlib.sha256).hexdigest()[:40]


def encode(flash: Flash, key: str) -> str:
    data = {"to": flash.path, "n": flash.notice, "p": flash.problem, "d": flash.detail}
    # UTF-8, not \u escapes: a German umlaut takes 2 bytes instead of 6.
    payload = base64.urlsafe_b64encode(json.dumps(data, ensure_ascii=False).encode())
    return f"{payload.decode()}.{_sign(payload, key)}"


def fitted(flash: Flash, key: str) -> str:
    """``encode(flash)``, with its texts shortened until it fits ``MAX_VALUE``: the detail
    first (English facts beside the sentence), then the problem, then the notice."""
    value = encode(flash, key)
    while len(value) > MAX_VALUE and (flash.detail or flash.problem or flash.notice):
        if flash.detail:
            flash = replace(flash, detail=_halved(flash.detail))
        elif flash.problem:
            flash = replace(flash, problem=_halved(flash.problem))
        else:
            flash = replace(flash, notice=_halved(flash.notice or ""))
        value = encode(flash, key)
    return value


def _halved(text: str) -> str | None:
    return text[: len(text) // 2].rstrip() + "…" if len(text) > 40 else None


def decode(value: str, key: str) -> Flash | None:
    """The flash in a cookie value, or None if it is not one we signed with ``key``."""
    payload, _, signature = value.rpartition(".")
    if not payload or not key:
        return None
    if not hmac.compare_digest(signature.encode(), _sign(payload.encode(), key).encode()):
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(payload.encode()))
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("to"), str):
        return None

    def text(v: object) -> str | None:
        return v[:MAX_TEXT] if isinstance(v, str) and v else None

    return Flash(data["to"], text(data.get("n")), text(data.get("p")), text(data.get("d")))


def put(
    response: Response,
    rt: Runtime,
    key: str,
    path: str,
    *,
    notice: str | None = None,
    problem: str | None = None,
    detail: str | None = None,
) -> Response:
    """Let the page at ``path`` (the redirect's target, without query) show a message once."""
    flash = Flash(
        path,
        notice[:MAX_TEXT] if notice else None,
        problem[:MAX_TEXT] if problem else None,
        detail[:MAX_TEXT] if detail else None,
    )
    response.set_cookie(
        cookie_name(rt),
        fitted(flash, key),
        max_age=SECONDS,
        path="/",
        secure=is_https(rt),
        httponly=True,
        samesite="strict",
    )
    return response


def take(request: Request, rt: Runtime, key: str) -> Flash | None:
    """The flash meant for this page, if any (the caller clears the cookie)."""
    value = request.cookies.get(cookie_name(rt))
    if not value:
        return None
    found = decode(value, key)
    if found is None or found.path != request.url.path:
        return None
    return found


def has_cookie(request: Request, rt: Runtime) -> bool:
    return cookie_name(rt) in request.cookies


def clear(response: Response, rt: Runtime) -> None:
    response.delete_cookie(
        cookie_name(rt), path="/", secure=is_https(rt), httponly=True, samesite="strict"
    )
