"""``db.write(flush=False)`` (the worker's lease): committed like any write, without waiting for
the disk, and the connection goes back to the pool with full durability for the next user."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError

from merchant_backend.runtime import Runtime
from merchant_backend.store import db
from merchant_backend.store.schema import merchants
from tests.conftest import make_merchant


def _durability(engine: Engine) -> str:
    with db.write(engine) as conn:
        if conn.dialect.name == "sqlite":
            return str(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())
        return str(conn.exec_driver_sql("SHOW synchronous_commit").scalar_one())


def test_an_unflushed_write_commits_and_leaves_durability_as_it_was(runtime: Runtime) -> None:
    before = _durability(runtime.engine)
    assert before in ("2", "on")  # FULL / on
    m = make_merchant(runtime)
    with db.write(runtime.engine, flush=False) as conn:
        if conn.dialect.name == "postgresql":
            assert conn.exec_driver_sql("SHOW synchronous_commit").scalar_one() == "off"
        conn.execute(merchants.update().where(merchants.c.id == m.id).values(name="Renamed"))
    with db.read(runtime.engine) as conn:
        assert conn.execute(select(merchants.c.name)).scalar_one() == "Renamed"
    assert _durability(runtime.engine) == before


def test_an_unflushed_write_that_fails_rolls_back_and_restores_durability(
    runtime: Runtime,
) -> None:
    before = _durability(runtime.engine)
    m = make_merchant(runtime)
    with pytest.raises(DBAPIError), db.write(runtime.engine, flush=False) as conn:
        conn.execute(merchants.update().where(merchants.c.id == m.id).values(name="Gone"))
        conn.execute(text("SELECT no_such_column FROM merchants"))
    with db.read(runtime.engine) as conn:
        assert conn.execute(select(merchants.c.name)).scalar_one() != "Gone"
    assert _durability(runtime.engine) == before
