"""``db.raw_write``, the group commit's transaction on the driver's cursor: it commits, it
rolls back everything on an error, it raises SQLAlchemy's exception types (parameters hidden),
and a connection the database has dropped is discarded instead of going back to the pool."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from merchant_backend.runtime import Runtime
from merchant_backend.store import db, inbox
from merchant_backend.store.schema import events
from tests import stripe_factory as sf
from tests.conftest import make_merchant
from tests.webhook_support import inbox_item


def _stored(runtime: Runtime) -> int:
    with db.read(runtime.engine) as conn:
        return int(conn.execute(select(func.count()).select_from(events)).scalar_one())


def test_it_commits_what_it_inserts(runtime: Runtime) -> None:
    m = make_merchant(runtime)
    items = [
        inbox_item(m, sf.event("payment_intent.created", sf.payment_intent())) for _ in range(3)
    ]
    dialect = runtime.engine.dialect.name
    with db.raw_write(runtime.engine) as cursor:
        new = inbox.insert_new_dbapi(cursor, dialect, items, 1.0)
    assert new == {(m.id, "stage", i.event_id) for i in items}
    assert _stored(runtime) == 3
    # The same events again: duplicates, nothing new.
    with db.raw_write(runtime.engine) as cursor:
        assert inbox.insert_new_dbapi(cursor, dialect, items, 2.0) == set()
    assert _stored(runtime) == 3


def test_an_error_rolls_back_the_whole_transaction_as_sqlalchemys_exception(
    runtime: Runtime,
) -> None:
    m = make_merchant(runtime)
    good = inbox_item(m, sf.event("payment_intent.created", sf.payment_intent()))
    dialect = runtime.engine.dialect.name
    name = "mer_parameter_not_shown"
    with pytest.raises(IntegrityError) as caught, db.raw_write(runtime.engine) as cursor:
        inbox.insert_new_dbapi(cursor, dialect, [good], 1.0)
        # A NOT NULL column left empty: the database refuses the row.
        sql = "INSERT INTO merchants (id, name) VALUES (?, NULL)"
        cursor.execute(sql if dialect == "sqlite" else sql.replace("?", "%s"), (name,))
    assert "[parameters:" not in str(caught.value)
    assert _stored(runtime) == 0
    # The connection went back clean: the next transaction works.
    with db.raw_write(runtime.engine) as cursor:
        assert inbox.insert_new_dbapi(cursor, dialect, [good], 1.0)
    assert _stored(runtime) == 1


def test_a_dropped_connection_is_discarded_not_reused(runtime: Runtime) -> None:
    if runtime.engine.dialect.name != "postgresql":
        pytest.skip("a server that drops its connections is PostgreSQL's case")
    m = make_merchant(runtime)
    item = inbox_item(m, sf.event("payment_intent.created", sf.payment_intent()))
    with pytest.raises(OperationalError), db.raw_write(runtime.engine) as cursor:
        cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    with db.raw_write(runtime.engine) as cursor:
        assert inbox.insert_new_dbapi(cursor, "postgresql", [item], 1.0)
    assert _stored(runtime) == 1
    with db.read(runtime.engine) as conn:
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
