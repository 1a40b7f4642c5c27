"""Taking access back, in the store: rotate a token, disable and enable a merchant, end web
sessions; admin sessions bound to the admin token."""

from __future__ import annotations

from sqlalchemy import func, select

from merchant_backend.clock import now
from merchant_backend.crypto import token_hash
from merchant_backend.runtime import Runtime
from merchant_backend.store import db, web_sessions
from merchant_backend.store import merchants as merchant_store
from merchant_backend.store.schema import merchants, stripe_datasets
from tests.conftest import MerchantCtx, add_data_set, make_merchant


def _sessions_of(runtime: Runtime, merchant_id: str) -> int:
    with db.read(runtime.engine) as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(web_sessions.web_sessions)
                .where(web_sessions.web_sessions.c.merchant_id == merchant_id)
            ).scalar_one()
        )


def _sign_in(runtime: Runtime, merchant_id: str | None, bound_to: str | None = None) -> str:
    with db.write(runtime.engine) as conn:
        session_id, _ = web_sessions.create(
            conn, merchant_id=merchant_id, is_admin=merchant_id is None, at=now(), bound_to=bound_to
        )
    return session_id


def test_rotating_a_token_retires_the_old_one_and_ends_the_merchants_sessions(
    runtime: Runtime, merchant: MerchantCtx
) -> None:
    other = make_merchant(runtime, "Other Shop")
    mine = _sign_in(runtime, merchant.id)
    theirs = _sign_in(runtime, other.id)
    with db.write(runtime.engine) as conn:
        new = merchant_store.rotate_token(conn, merchant.id)
    assert new is not None and new.startswith("mbt_") and new != merchant.token
    with db.read(runtime.engine) as conn:
        assert merchant_store.by_token(conn, merchant.token) is None
        found = merchant_store.by_token(conn, new)
        assert found is not None and found.id == merchant.id
        # Only the hash is stored.
        stored = conn.execute(
            select(merchants.c.token_hash).where(merchants.c.id == merchant.id)
        ).scalar_one()
        assert stored == token_hash(new)
        assert web_sessions.get(conn, mine, now()) is None
        # Another merchant keeps its token and its sessions.
        assert merchant_store.by_token(conn, other.token) is not None
        assert web_sessions.get(conn, theirs, now()) is not None


def test_rotating_an_unknown_merchant_changes_nothing(
    runtime: Runtime, merchant: MerchantCtx
) -> None:
    with db.write(runtime.engine) as conn:
        assert merchant_store.rotate_token(conn, "mer_0000000000000000") is None
    with db.read(runtime.engine) as conn:
        assert merchant_store.by_token(conn, merchant.token) is not None


def test_disable_and_enable_lose_nothing(runtime: Runtime, merchant: MerchantCtx) -> None:
    add_data_set(runtime, merchant.id, "stage")
    session_id = _sign_in(runtime, merchant.id)
    with db.write(runtime.engine) as conn:
        disabled = merchant_store.set_disabled(conn, merchant.id, True)
    assert disabled is not None and disabled.disabled and disabled.as_json()["disabled"] is True
    assert _sessions_of(runtime, merchant.id) == 0
    with db.read(runtime.engine) as conn:
        assert web_sessions.get(conn, session_id, now()) is None
        # The token still names the merchant; the adapters refuse it while disabled.
        found = merchant_store.by_token(conn, merchant.token)
        assert found is not None and found.disabled
    # Twice is the same as once: the time it was first disabled is kept.
    with db.write(runtime.engine) as conn:
        again = merchant_store.set_disabled(conn, merchant.id, True)
    assert again is not None and again.disabled_at == disabled.disabled_at
    with db.write(runtime.engine) as conn:
        enabled = merchant_store.set_disabled(conn, merchant.id, False)
    assert enabled is not None and not enabled.disabled
    with db.read(runtime.engine) as conn:
        found = merchant_store.by_token(conn, merchant.token)
        assert found is not None and not found.disabled
        assert (
            conn.execute(
                select(func.count())
                .select_from(stripe_datasets)
                .where(stripe_datasets.c.merchant_id == merchant.id)
            ).scalar_one()
            == 1
        )
    with db.write(runtime.engine) as conn:
        assert merchant_store.set_disabled(conn, "mer_0000000000000000", True) is None


def test_a_session_made_while_disabled_opens_nothing(
    runtime: Runtime, merchant: MerchantCtx
) -> None:
    with db.write(runtime.engine) as conn:
        merchant_store.set_disabled(conn, merchant.id, True)
    # A sign-in that raced the disable and wrote its session afterwards.
    late = _sign_in(runtime, merchant.id)
    with db.read(runtime.engine) as conn:
        assert web_sessions.get(conn, late, now()) is None
    with db.write(runtime.engine) as conn:
        merchant_store.set_disabled(conn, merchant.id, False)


def test_an_admin_session_carries_the_binding_it_was_made_with(runtime: Runtime) -> None:
    bound = web_sessions.credential_hash("x" * 40)
    session_id = _sign_in(runtime, None, bound_to=bound)
    with db.read(runtime.engine) as conn:
        session = web_sessions.get(conn, session_id, now())
    assert session is not None and session.is_admin and session.credential_hash == bound
    assert web_sessions.credential_hash("y" * 40) != bound
    # Not the hash API tokens are stored under: one table's hash never opens the other.
    assert bound != token_hash("x" * 40)
