"""The web's side of ``services.once``: a form's nonce checked, a page that shows a new secret.

A form that makes a secret (a merchant, a token, a destination, a signing secret) carries a
one-time nonce and its post answers with a redirect to a page that shows the secret once.
"""

from __future__ import annotations

from fastapi import Response

from merchant_backend.i18n import gettext as _
from merchant_backend.services import once
from merchant_backend.services.sessions import WebSession
from merchant_backend.web.render import WebError


def form_post(session: WebSession, form_nonce: str) -> once.FormPost:
    """The post of a once-only form; a missing or malformed nonce is refused unread (400)."""
    if not once.is_form_nonce(form_nonce):
        raise WebError(
            400,
            _("This form has expired"),
            _("The form is from an older page. Reload the page and try again."),
        )
    return once.FormPost(session, form_nonce)


def never_kept(response: Response) -> Response:
    """A page showing a secret: said here as well as by the common headers, as it must never
    be kept anywhere (a cache, the browser's history)."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response
