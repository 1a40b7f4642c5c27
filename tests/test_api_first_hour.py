"""The API side of issue 12: PATCH changes only the fields sent (PUT keeps storing the whole
data set), and with no admin token set the admin routes say the admin API is off instead of
"the token is not valid"."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from merchant_backend.asgi import create_app
from merchant_backend.runtime import Runtime
from merchant_backend.store import datasets, db
from tests.conftest import ADMIN_TOKEN, SECRET_KEY, SIGNING_SECRET, MerchantCtx
from tests.foundation_helpers import rows
from tests.web_support import hidden

NEW_SECRET = "whsec_" + "N3wS3cr3t" * 4
URL = "/api/v1/merchants/{}/stripe/stage"


def secrets_of(runtime: Runtime, merchant_id: str) -> Any:
    with db.read(runtime.engine) as conn:
        return datasets.secrets(conn, runtime.keys.for_token, merchant_id, "stage")


def test_patch_changes_only_the_fields_sent(
    client: TestClient, runtime: Runtime, connected: MerchantCtx
) -> None:
    before = secrets_of(runtime, connected.id)
    r = client.patch(
        URL.format(connected.id),
        headers=connected.auth,
        json={"webhook_signing_secret": NEW_SECRET},
    )
    assert r.status_code == 200, r.text
    assert r.json()["webhook_signing_secret"] == "whsec_…" + NEW_SECRET[-4:]
    after = secrets_of(runtime, connected.id)
    assert after.signing_secret == NEW_SECRET
    assert (after.account_id, after.publishable_key, after.secret_key) == (
        before.account_id,
        before.publishable_key,
        before.secret_key,
    )
    assert SIGNING_SECRET not in r.text and SECRET_KEY not in r.text


def test_patch_validates_the_whole_data_set_and_stores_nothing_when_refused(
    client: TestClient, runtime: Runtime, connected: MerchantCtx
) -> None:
    snapshot = rows(runtime.engine)
    r = client.patch(
        URL.format(connected.id),
        headers=connected.auth,
        json={"publishable_key": "pk_live_TYooMQauvdEDq54NiTphI7jx", "secret_key": "sk_test_x"},
    )
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["error"]["errors"]}
    assert fields == {"publishable_key", "secret_key"}
    # An explicit null is refused rather than read as "remove" or "keep".
    r = client.patch(URL.format(connected.id), headers=connected.auth, json={"account_id": None})
    assert r.status_code == 422 and r.json()["error"]["field"] == "account_id"
    assert "leave a field out" in r.json()["error"]["message"]
    assert rows(runtime.engine) == snapshot


def test_patch_needs_a_data_set_and_put_still_stores_a_whole_one(
    client: TestClient, runtime: Runtime, merchant: MerchantCtx
) -> None:
    r = client.patch(URL.format(merchant.id), headers=merchant.auth, json={"account_id": "acct_1X"})
    assert r.status_code == 404 and "store one with PUT" in r.json()["error"]["message"]
    # PUT without the account id and publishable key is refused: they are the data set.
    r = client.put(URL.format(merchant.id), headers=merchant.auth, json={"secret_key": SECRET_KEY})
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["error"]["errors"]} == {"account_id", "publishable_key"}
    r = client.put(
        URL.format(merchant.id),
        headers=merchant.auth,
        json={
            "account_id": "acct_1PgafTB7WZ01zgkW",
            "publishable_key": "pk_test_TYooMQauvdEDq54NiTphI7jx",
            "secret_key": SECRET_KEY,
        },
    )
    assert r.status_code == 200, r.text
    # A PUT after that may leave the secrets out (they cannot be read back to resend).
    r = client.put(
        URL.format(merchant.id),
        headers=merchant.auth,
        json={"account_id": "acct_1Other2", "publishable_key": "pk_test_TYooMQauvdEDq54NiTphI7jx"},
    )
    assert r.status_code == 200 and secrets_of(runtime, merchant.id).secret_key == SECRET_KEY


def test_with_no_admin_token_the_admin_api_says_it_is_off(runtime: Runtime) -> None:
    off = Runtime(runtime.settings.model_copy(update={"admin_token": None}), engine=runtime.engine)
    # https: the public URL is, so the sign-in cookie is a Secure __Host- one.
    with TestClient(create_app(off, run_worker=False), base_url="https://testserver") as client:
        for headers in ({"Authorization": f"Bearer {ADMIN_TOKEN}"}, {}):
            r = client.post("/api/v1/merchants", headers=headers, json={"name": "Shop"})
            assert r.status_code == 403
            error = r.json()["error"]
            assert error["code"] == "admin_api_off"
            assert error["message"].startswith(
                "the admin API is off: set MERCHANT_BACKEND_ADMIN_TOKEN"
            )
            assert client.get("/api/v1/merchants", headers=headers).status_code == 403
        # The web sign-in says it too, for a token that is not a merchant's.
        form = client.get("/sign-in")
        r = client.post(
            "/sign-in",
            data={"token": ADMIN_TOKEN, "sign_in_token": hidden(form.text, "sign_in_token")},
        )
        assert r.status_code == 401
        assert "the admin sign-in is off: set MERCHANT_BACKEND_ADMIN_TOKEN" in r.text


def test_with_an_admin_token_a_wrong_token_is_still_just_not_valid(client: TestClient) -> None:
    r = client.post(
        "/api/v1/merchants", headers={"Authorization": "Bearer nope"}, json={"name": "Shop"}
    )
    assert r.status_code == 401 and r.json()["error"]["message"] == "the token is not valid"
