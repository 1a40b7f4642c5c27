"""SQL text for the worker's per-batch statements, run by the driver (``exec_driver_sql``).

Why not Core: executing a Core statement costs 100-250 µs of CPU even when its compiled form
is cached (the cache key walk, parameter processing, adapting the result's columns), more than
SQLite takes to run it; the same SQL as text costs about 25 µs. At a few events per batch the
worker spent most of its CPU there. So the statements it runs for every batch are written as
text here and in their modules, built from constants only (never from data: every value
travels as a parameter) and cached per dialect and row count.

The two drivers differ only in the placeholder: sqlite3 takes ``?``, psycopg ``%s``.
"""

from __future__ import annotations

import functools


def mark(dialect: str) -> str:
    return "?" if dialect == "sqlite" else "%s"


@functools.lru_cache(maxsize=512)
def rows(dialect: str, width: int, n: int) -> str:
    """``(?, ?), (?, ?)``: ``n`` rows of ``width`` placeholders, for a multi-row VALUES."""
    row = "(" + ", ".join([mark(dialect)] * width) + ")"
    return ", ".join([row] * n)


@functools.lru_cache(maxsize=512)
def in_list(dialect: str, n: int) -> str:
    """``(?, ?, ?)``: ``n`` placeholders, for ``IN``."""
    return "(" + ", ".join([mark(dialect)] * n) + ")"
