"""The SQLite connections ``serve`` writes through: the settings each one gets, and writers
reusing the connection whose page cache the previous write left current."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from merchant_backend.store import db


@pytest.fixture
def sqlite_engine(db_kind: str, engine: Engine) -> Engine:
    if db_kind != "sqlite":
        pytest.skip("SQLite's connection settings are the SQLite run's")
    return engine


def _pragma(conn: Any, name: str) -> Any:
    return conn.exec_driver_sql(f"PRAGMA {name}").scalar_one()


def test_every_connection_is_durable_and_keeps_temporary_data_in_memory(
    sqlite_engine: Engine,
) -> None:
    with db.read(sqlite_engine) as first, db.read(sqlite_engine) as second:
        for conn in (first, second):  # two pooled connections, each configured on connect
            assert _pragma(conn, "journal_mode") == "wal"
            assert _pragma(conn, "synchronous") == 2  # FULL: a commit survives power loss
            assert _pragma(conn, "foreign_keys") == 1
            # MEMORY: statement journals and sorts never go to files under /var/tmp.
            assert _pragma(conn, "temp_store") == 2


def _driver(conn: Any) -> Any:
    return conn.connection.dbapi_connection


def test_writers_in_turn_get_the_connection_the_last_write_used(sqlite_engine: Engine) -> None:
    # Several connections in the pool, as in serve (readers on other threads hold some).
    with db.read(sqlite_engine) as a, db.read(sqlite_engine) as b:
        readers = {id(_driver(a)), id(_driver(b))}
    with db.write(sqlite_engine) as conn:
        last = id(_driver(conn))
    for _ in range(3):
        with db.raw_write(sqlite_engine) as cursor:
            assert id(cursor.connection) == last
        with db.write(sqlite_engine) as conn:
            assert id(_driver(conn)) == last
    assert last in readers  # taken back from the pool, not opened anew
