"""SQL text for the worker's per-batch statements, run on the driver's own cursor.

Why not Core: executing a Core statement costs 100-250 µs of CPU even when its compiled form
is cached (the cache key walk, parameter processing, adapting the result's columns), more than
SQLite takes to run it. ``exec_driver_sql`` still costs about 25 µs (an execution context and
a result object per statement); the driver's cursor about 5 µs. At a few events per batch the
worker spent most of its CPU there. So the statements it runs for every batch are written as
text here and in their modules, built from constants only (never from data: every value
travels as a parameter) and cached per dialect and row count, and ``run`` executes them in the
SQLAlchemy connection's transaction, raising SQLAlchemy's errors as ``execute`` would.

The two drivers differ only in the placeholder: sqlite3 takes ``?``, psycopg ``%s``.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.exc import DBAPIError


def run(conn: Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    """Execute ``sql`` on the driver's cursor of ``conn`` (in its transaction); returns the
    rows as the driver's tuples, [] for a statement that gives none. A driver error is raised
    as ``driver_error`` says, so callers handle it as they would from ``Connection.execute``.
    """
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description is not None else []
    except conn.dialect.loaded_dbapi.Error as exc:
        raise driver_error(conn.dialect, exc, sql) from exc
    finally:
        cursor.close()


def driver_error(dialect: Dialect, exc: Exception, sql: str | None = None) -> BaseException:
    """A driver's error as SQLAlchemy raises it (``IntegrityError``, ``OperationalError`` …,
    the driver's error as ``orig``), its parameters never shown: they are event bodies.
    For everything that runs on the driver's cursor (``run``, ``db.raw_write``)."""
    return DBAPIError.instance(
        sql, None, exc, dialect.loaded_dbapi.Error, hide_parameters=True, dialect=dialect
    )


def mark(dialect: str) -> str:
    return "?" if dialect == "sqlite" else "%s"


@functools.lru_cache(maxsize=512)
def marks(dialect: str, n: int) -> str:
    """``(?, ?, ?)``: ``n`` placeholders, for ``IN`` or a row of ``VALUES``."""
    return "(" + ", ".join([mark(dialect)] * n) + ")"


# Values per statement: far below SQLite's 32766 and PostgreSQL's 65535 parameters.
MAX_VALUES = 8000


@functools.lru_cache(maxsize=512)
def _insert(dialect: str, table: str, columns: tuple[str, ...], n: int, suffix: str) -> str:
    row = marks(dialect, len(columns))
    # Constants only: table and column names from the callers' code, a placeholder per value.
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES "  # noqa: S608
        + ", ".join([row] * n)
        + (f" {suffix}" if suffix else "")
    )


def insert_rows(
    conn: Connection,
    table: str,
    columns: tuple[str, ...],
    rows: Sequence[Sequence[Any]],
    suffix: str = "",
) -> list[Any]:
    """Insert ``rows`` (values in ``columns`` order) with a multi-row VALUES per chunk;
    ``suffix`` is the rest of the statement (``ON CONFLICT …``, ``RETURNING …``). Returns the
    rows a RETURNING gave, else []."""
    dialect = conn.dialect.name
    per = max(1, MAX_VALUES // len(columns))
    out: list[Any] = []
    for start in range(0, len(rows), per):
        chunk = rows[start : start + per]
        params = tuple(itertools.chain.from_iterable(chunk))  # flat, in C: ~25 values per event
        out += run(conn, _insert(dialect, table, columns, len(chunk), suffix), params)
    return out
