"""A destination's signing secret is made once and shown once on the web (issue: a reload of the
answer to "Add destination" added a second destination, and one to "New signing secret" rotated
again, so the secret just copied stopped working).

Both forms answer with POST/redirect/GET, as "Create merchant" does (tests/test_web_token_reveal):
the post keeps the new secret, encrypted, for the session that made it, and the page it redirects
to shows it once. Sending the same form again adds and rotates nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from merchant_backend import crypto
from merchant_backend.asgi import create_app
from merchant_backend.runtime import Runtime
from merchant_backend.services import notifications
from tests.foundation_helpers import rows
from tests.web_support import form_fields, sign_in
from tests.webhook_support import connected_merchant

SECRET_FIELD = re.compile(r'id="signing-secret" type="text" readonly value="(whsec_[^"]+)"')
SHOWN_ONCE = "This signing secret was shown once; rotate it if you did not copy it."


@pytest.fixture
def rt(runtime: Runtime) -> Runtime:
    s = runtime.settings.model_copy(update={"outbound_allow_private": True})
    return Runtime(s, engine=runtime.engine)


@pytest.fixture
def web(rt: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(rt, run_worker=False), base_url="https://testserver") as c:
        yield c


def _shown_secret(html: str) -> str:
    found = SECRET_FIELD.search(html)
    assert found is not None, "no signing secret on the page"
    return found.group(1)


def _signed_in(web: TestClient, rt: Runtime) -> tuple[Any, str]:
    m = connected_merchant(rt)
    sign_in(web, m.token)
    return m, f"/m/{m.id}/stage/notifications"


def _add_form(web: TestClient, base: str) -> dict[str, Any]:
    return {
        **form_fields(web.get(base).text, base),
        "url": "http://127.0.0.1:9/hook",
        "object_types": ["customer"],
    }


def _destinations(rt: Runtime, merchant_id: str) -> list[Any]:
    return [v.destination for v in notifications.list_destinations(rt, merchant_id, "stage")]


def _in_force(rt: Runtime, merchant_id: str, secret: str) -> bool:
    [dest] = _destinations(rt, merchant_id)
    return dest.secret_hint == crypto.mask(secret)


def test_sending_the_add_form_twice_adds_one_destination(web: TestClient, rt: Runtime) -> None:
    m, base = _signed_in(web, rt)
    form = _add_form(web, base)
    first = web.post(base, data=form)
    secret = _shown_secret(first.text)
    again = web.post(base, data=form)  # the browser's reload of that answer
    assert again.status_code == 200
    assert len(_destinations(rt, m.id)) == 1
    assert _in_force(rt, m.id, secret)


def test_sending_the_rotate_form_twice_rotates_once(web: TestClient, rt: Runtime) -> None:
    m, base = _signed_in(web, rt)
    added = web.post(base, data=_add_form(web, base))
    [dest] = _destinations(rt, m.id)
    page, action = f"{base}/{dest.id}", f"{base}/{dest.id}/rotate"
    form = form_fields(web.get(page).text, action)
    first = web.post(action, data=form)
    secret = _shown_secret(first.text)
    assert secret != _shown_secret(added.text)
    again = web.post(action, data=form)  # the reload
    assert again.status_code == 200 and secret not in again.text
    # The secret the merchant copied from the first answer is still the one in force.
    assert _in_force(rt, m.id, secret)


def test_the_post_redirects_and_the_page_shows_the_secret_once(
    web: TestClient, rt: Runtime
) -> None:
    m, base = _signed_in(web, rt)
    r = web.post(base, data=_add_form(web, base), follow_redirects=False)
    [dest] = _destinations(rt, m.id)
    assert r.status_code == 303 and r.headers["location"] == f"{base}/{dest.id}/secret"
    assert "whsec_" not in r.headers["location"] and "whsec_" not in r.text
    shown = web.get(r.headers["location"])
    assert shown.status_code == 200 and shown.headers["cache-control"] == "no-store"
    secret = _shown_secret(shown.text)
    assert "not shown again" in shown.text
    assert rows(rt.engine)["web_reveals"] == []  # forgotten as it was shown
    snapshot = rows(rt.engine)
    again = web.get(r.headers["location"])
    assert again.status_code == 200 and again.headers["cache-control"] == "no-store"
    assert secret not in again.text and 'id="signing-secret"' not in again.text
    assert SHOWN_ONCE in again.text
    assert f'action="{base}/{dest.id}/rotate"' in again.text
    assert rows(rt.engine) == snapshot
    # Neither the destination page nor the list shows it.
    assert secret not in web.get(f"{base}/{dest.id}").text and secret not in web.get(base).text
    # Rotating from the shown-once page shows a new secret, once, and it is the one in force.
    action = f"{base}/{dest.id}/rotate"
    rotated = web.post(action, data=form_fields(again.text, action))
    assert [h.status_code for h in rotated.history] == [303]
    assert str(rotated.url).endswith(r.headers["location"])
    new = _shown_secret(rotated.text)
    assert new != secret and "old signing secret no longer works" in rotated.text
    assert _in_force(rt, m.id, new)


def test_a_form_without_its_nonce_adds_and_rotates_nothing(web: TestClient, rt: Runtime) -> None:
    m, base = _signed_in(web, rt)
    web.post(base, data=_add_form(web, base))
    [dest] = _destinations(rt, m.id)
    action = f"{base}/{dest.id}/rotate"
    rotate_form = form_fields(web.get(f"{base}/{dest.id}").text, action)
    for url, form in ((base, _add_form(web, base)), (action, rotate_form)):
        del form["form_nonce"]
        r = web.post(url, data=form, follow_redirects=False)
        assert r.status_code == 400 and "older page" in r.text
    assert _destinations(rt, m.id) == [dest]


def test_only_the_merchants_session_that_made_it_sees_the_secret(
    web: TestClient, rt: Runtime
) -> None:
    m, base = _signed_in(web, rt)
    r = web.post(base, data=_add_form(web, base), follow_redirects=False)
    page = r.headers["location"]
    app = create_app(rt, run_worker=False)
    with TestClient(app, base_url="https://testserver") as other:
        sign_in(other, m.token)
        elsewhere = other.get(page)
        assert elsewhere.status_code == 200 and 'id="signing-secret"' not in elsewhere.text
    stranger = connected_merchant(rt, "Other")
    with TestClient(app, base_url="https://testserver") as other:
        sign_in(other, stranger.token)
        assert other.get(page).status_code == 404
        theirs = f"/m/{stranger.id}/stage/notifications/{page.split('/')[-2]}/secret"
        assert other.get(theirs).status_code == 404
    assert _shown_secret(web.get(page).text).startswith("whsec_")
