"""A new API token is made once and shown once on the web (issue: a reload made a second merchant).

The operator's "Create merchant" and "Rotate token" answer with POST/redirect/GET: the post keeps
the new token, encrypted, for the web session that made it, and the GET page it redirects to shows
it once and forgets it. Sending the same form again (what a reload of the post's answer, or Back
and submit, does) makes no second merchant and rotates nothing again.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from merchant_backend import crypto
from merchant_backend.runtime import Runtime
from merchant_backend.services import merchants, once, sessions
from merchant_backend.services.access import Principal
from merchant_backend.store import db, web_reveals
from merchant_backend.store import merchants as merchant_store
from merchant_backend.store.schema import web_reveals as web_reveals_table
from merchant_backend.store.web_sessions import SESSION_SECONDS, WebSession
from tests.conftest import ADMIN_TOKEN, FakeClock, MerchantCtx
from tests.foundation_helpers import leaks, rows
from tests.web_support import form_fields, sign_in

TOKEN_FIELD = re.compile(r'id="api-token" type="text" readonly value="([^"]+)"')


@pytest.fixture
def web(app: Any) -> Iterator[TestClient]:
    with TestClient(app, base_url="https://testserver") as c:
        yield c


def _merchants(runtime: Runtime) -> list[Any]:
    with db.read(runtime.engine) as conn:
        return merchant_store.list_all(conn)


def _shown_token(html: str) -> str:
    found = TOKEN_FIELD.search(html)
    assert found is not None, "no API token on the page"
    return found.group(1)


def _api_ok(web: TestClient, merchant_id: str, token: str) -> bool:
    auth = {"Authorization": f"Bearer {token}"}
    r = web.get(f"/api/v1/merchants/{merchant_id}/stage/payment-intents", headers=auth)
    return r.status_code == 200


def test_sending_the_create_form_twice_makes_one_merchant(
    web: TestClient, runtime: Runtime
) -> None:
    sign_in(web, ADMIN_TOKEN)
    form = {**form_fields(web.get("/merchants").text, "/merchants"), "name": "Corner Shop"}
    first = web.post("/merchants", data=form)
    token = _shown_token(first.text)
    again = web.post("/merchants", data=form)  # the browser's reload of that answer
    assert again.status_code == 200
    [made] = _merchants(runtime)
    assert made.name == "Corner Shop"
    assert _api_ok(web, made.id, token)


def test_sending_the_rotate_form_twice_rotates_once(
    web: TestClient, runtime: Runtime, stage: MerchantCtx
) -> None:
    sign_in(web, ADMIN_TOKEN)
    action = f"/merchants/{stage.id}/rotate-token"
    form = form_fields(web.get("/merchants").text, action)
    first = web.post(action, data=form)
    token = _shown_token(first.text)
    again = web.post(action, data=form)  # the browser's reload of that answer
    assert again.status_code == 200
    # The token the operator copied from the first answer still works.
    assert _api_ok(web, stage.id, token)
    assert not _api_ok(web, stage.id, stage.token)


# ------------------------------------------------------------------ the token page


def _created(web: TestClient, name: str = "Corner Shop") -> tuple[Any, str]:
    """Create a merchant through the form without following the redirect: (answer, form)."""
    form = {**form_fields(web.get("/merchants").text, "/merchants"), "name": name}
    return web.post("/merchants", data=form, follow_redirects=False), form


def _kept(runtime: Runtime) -> dict[str, list[Any]]:
    found = rows(runtime.engine)
    return {"web_reveals": found["web_reveals"], "web_form_nonces": found["web_form_nonces"]}


def test_the_post_redirects_and_the_page_shows_the_token_once(
    web: TestClient, runtime: Runtime
) -> None:
    sign_in(web, ADMIN_TOKEN)
    r, _form = _created(web)
    [made] = _merchants(runtime)
    assert r.status_code == 303 and r.headers["location"] == f"/merchants/{made.id}/token"
    assert "mbt_" not in r.headers["location"] and "mbt_" not in r.text
    shown = web.get(r.headers["location"])
    assert shown.status_code == 200 and shown.headers["cache-control"] == "no-store"
    token = _shown_token(shown.text)
    assert "Merchant created" in shown.text and "it is not shown again" in shown.text
    assert _kept(runtime)["web_reveals"] == []  # forgotten as it was shown
    snapshot = rows(runtime.engine)
    # The reload: the token is not shown again, and nothing is made or changed.
    again = web.get(r.headers["location"])
    assert again.status_code == 200 and again.headers["cache-control"] == "no-store"
    assert token not in again.text and 'id="api-token"' not in again.text
    assert "This token was shown once; rotate it if you did not copy it." in again.text
    assert f'action="/merchants/{made.id}/rotate-token"' in again.text
    assert rows(runtime.engine) == snapshot
    assert _api_ok(web, made.id, token)


def test_rotating_from_the_shown_once_page_shows_a_new_token(
    web: TestClient, runtime: Runtime
) -> None:
    sign_in(web, ADMIN_TOKEN)
    r, _form = _created(web)
    page = r.headers["location"]
    first = _shown_token(web.get(page).text)
    [made] = _merchants(runtime)
    action = f"/merchants/{made.id}/rotate-token"
    rotated = web.post(action, data=form_fields(web.get(page).text, action))
    assert [h.status_code for h in rotated.history] == [303] and str(rotated.url).endswith(page)
    second = _shown_token(rotated.text)
    assert "New API token" in rotated.text and "old token no longer works" in rotated.text
    assert second != first
    assert _api_ok(web, made.id, second) and not _api_ok(web, made.id, first)


def test_the_same_form_again_goes_to_the_first_merchant_whatever_its_name(
    web: TestClient, runtime: Runtime
) -> None:
    sign_in(web, ADMIN_TOKEN)
    r, form = _created(web)
    again = web.post("/merchants", data={**form, "name": "Changed"}, follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"] == r.headers["location"]
    assert [m.name for m in _merchants(runtime)] == ["Corner Shop"]
    # A fresh form (a new page) makes a new merchant, even with the same name.
    _created(web)
    assert [m.name for m in _merchants(runtime)] == ["Corner Shop", "Corner Shop"]


@pytest.mark.parametrize("nonce", [None, "", "short", "x" * 65, "not a nonce at all!!!!!"])
def test_a_form_without_its_nonce_makes_nothing(
    web: TestClient, runtime: Runtime, stage: MerchantCtx, nonce: str | None
) -> None:
    sign_in(web, ADMIN_TOKEN)
    listing = web.get("/merchants").text
    for action, extra in (
        ("/merchants", {"name": "Shop"}),
        (f"/merchants/{stage.id}/rotate-token", {}),
    ):
        form = {**form_fields(listing, action), **extra}
        del form["form_nonce"]
        if nonce is not None:
            form["form_nonce"] = nonce
        r = web.post(action, data=form, follow_redirects=False)
        assert r.status_code == 400 and "older page" in r.text
    assert [m.id for m in _merchants(runtime)] == [stage.id]
    assert _api_ok(web, stage.id, stage.token)


def test_only_the_session_that_made_it_sees_the_token(
    app: Any, web: TestClient, runtime: Runtime
) -> None:
    sign_in(web, ADMIN_TOKEN)
    r, _form = _created(web)
    page = r.headers["location"]
    with TestClient(app, base_url="https://testserver") as other:
        sign_in(other, ADMIN_TOKEN)
        elsewhere = other.get(page)
        assert elsewhere.status_code == 200 and 'id="api-token"' not in elsewhere.text
        # A merchant's session: the page is not there at all.
        [made] = _merchants(runtime)
        with TestClient(app, base_url="https://testserver") as merchant:
            token = _shown_token(web.get(page).text)
            sign_in(merchant, token)
            assert merchant.get(page, follow_redirects=False).status_code == 404
    missing = web.get("/merchants/mer_0000000000000000/token")
    assert missing.status_code == 404
    assert _api_ok(web, made.id, token)


def test_a_token_never_shown_goes_with_its_session(web: TestClient, runtime: Runtime) -> None:
    sign_in(web, ADMIN_TOKEN)
    r, _form = _created(web)
    assert len(_kept(runtime)["web_reveals"]) == 1
    assert len(_kept(runtime)["web_form_nonces"]) == 1
    web.post("/sign-out", data=form_fields(web.get("/merchants").text, "/sign-out"))
    assert _kept(runtime) == {"web_reveals": [], "web_form_nonces": []}
    sign_in(web, ADMIN_TOKEN)
    assert 'id="api-token"' not in web.get(r.headers["location"]).text


def test_a_token_never_shown_expires_with_its_session(
    app: Any, web: TestClient, runtime: Runtime, clock: FakeClock
) -> None:
    clock.freeze()
    sign_in(web, ADMIN_TOKEN)
    r, _form = _created(web)
    clock.advance(SESSION_SECONDS - 1)
    assert len(_kept(runtime)["web_reveals"]) == 1
    clock.advance(1)
    assert web.get(r.headers["location"], follow_redirects=False).status_code == 303  # sign in
    # The next sign-in, anyone's, purges what expired.
    with TestClient(app, base_url="https://testserver") as other:
        sign_in(other, ADMIN_TOKEN)
    assert _kept(runtime) == {"web_reveals": [], "web_form_nonces": []}


def test_the_kept_token_is_encrypted_and_never_logged(
    web: TestClient, runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    sign_in(web, ADMIN_TOKEN)
    r, _form = _created(web)
    [kept] = _kept(runtime)["web_reveals"]
    stored = repr(rows(runtime.engine)).encode()
    assert "mb1:" in repr(kept)
    token = _shown_token(web.get(r.headers["location"]).text)
    assert leaks(stored, [token]) == []
    out = capsys.readouterr()
    assert leaks((out.out + out.err).encode(), [token]) == []
    assert token not in str(web.cookies)


# ------------------------------------------------------------------ the store and the service


def _admin_session(runtime: Runtime) -> WebSession:
    return sessions.start_session(runtime, Principal(True, None))[1]


def test_two_posts_of_the_same_form_at_once_make_one_merchant(runtime: Runtime) -> None:
    post = once.FormPost(_admin_session(runtime), once.new_form_nonce())
    start = threading.Barrier(2)

    def send() -> once.Outcome:
        start.wait()
        return merchants.create_merchant_once(runtime, post, "Same Time")

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda _: send(), range(2)))
    [made] = _merchants(runtime)
    assert {o.id for o in outcomes} == {made.id}
    assert sorted(o.repeated for o in outcomes) == [False, True]


def test_a_kept_token_opens_only_in_its_own_row_and_survives_a_master_key_rotation(
    runtime: Runtime,
) -> None:
    mine, theirs = _admin_session(runtime), _admin_session(runtime)
    old, new = (crypto.parse_keys(crypto.generate_key())[0] for _ in range(2))
    subject = web_reveals.merchant_token("mer_0123456789abcdef")
    secret = crypto.new_token("mbt")
    with db.write(runtime.engine) as conn:
        for session in (mine, theirs):
            web_reveals.keep(
                conn,
                crypto.Keyring((old,)),
                session_hash=session.id_hash,
                subject=subject,
                secret=secret,
                reason="created",
                at=0.0,
                expires_at=session.expires_at,
            )
        assert web_reveals.reencrypt_all(conn, crypto.Keyring((new, old))) == 2
        # Copied into another session's row, a ciphertext does not open.
        [enc] = conn.execute(
            select(web_reveals_table.c.secret_enc).where(
                web_reveals_table.c.session_hash == mine.id_hash
            )
        ).one()
        conn.execute(
            update(web_reveals_table)
            .where(web_reveals_table.c.session_hash == theirs.id_hash)
            .values(secret_enc=enc)
        )
        only_new = crypto.Keyring((new,))

        def take(session: WebSession) -> Any:
            return web_reveals.take(
                conn, lambda _: only_new, session_hash=session.id_hash, subject=subject, at=1.0
            )

        assert take(theirs) is None
        shown = take(mine)
        assert shown is not None and shown.secret == secret and secret not in repr(shown)
        assert take(mine) is None
