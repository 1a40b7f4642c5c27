"""Helpers for the web page tests: sign in through the form, read hidden form fields."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient

_HIDDEN = re.compile(r'<input type="hidden" name="(?P<name>[a-z_]+)" value="(?P<value>[^"]*)"')


def hidden(html: str, name: str) -> str:
    """The value of the first hidden input ``name`` in a page."""
    for m in _HIDDEN.finditer(html):
        if m.group("name") == name:
            return m.group("value")
    raise AssertionError(f"no hidden field {name!r} in the page")


def sign_in(client: TestClient, token: str, next_path: str = "") -> Any:
    """Sign in through the form, as a browser does; returns the redirect response."""
    form = client.get("/sign-in")
    assert form.status_code == 200, form.text
    r = client.post(
        "/sign-in",
        data={
            "token": token,
            "sign_in_token": hidden(form.text, "sign_in_token"),
            "next": next_path,
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    return r


def csrf_of(client: TestClient, path: str) -> str:
    r = client.get(path)
    assert r.status_code == 200, r.text
    return hidden(r.text, "csrf_token")


def form_fields(html: str, action: str) -> dict[str, str]:
    """Every hidden field of the form posting to ``action``: what a browser sends again when
    the form is submitted a second time (a reload of its answer, or Back and submit)."""
    start = html.find(f'action="{action}"')
    assert start != -1, f"no form posting to {action!r} in the page"
    end = html.find("</form>", start)
    return {m.group("name"): m.group("value") for m in _HIDDEN.finditer(html[start:end])}
