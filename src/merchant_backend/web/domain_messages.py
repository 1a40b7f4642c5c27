"""The domain's refusals and conflicts as a page says them, in the reader's language.

A ``DomainError`` (or a ``FieldError``) keeps its English ``message`` for the API and the CLI.
One written from a template (``DomainError.of``, the template marked ``N_`` where it is defined)
keeps that template and its values too: the page looks the template up in its catalogue and
fills it with the same values, so an English page says exactly what the API says. An error
without a template is shown as its English message.
"""

from __future__ import annotations

from typing import Any

from merchant_backend.i18n import gettext


def said(template: str | None, values: dict[str, Any], message: str) -> str:
    """``message`` in the page's language, where it was written from ``template``."""
    if template is None:
        return message
    try:
        return gettext(template) % values
    except (KeyError, TypeError, ValueError):  # values of another shape: as the API says it
        return message
