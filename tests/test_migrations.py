"""The schema comes from Alembic migrations only, and they build exactly what schema.py
describes (a table or index added to one but not the other fails here)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from structlog.testing import capture_logs

from merchant_backend.store import db, inbox
from merchant_backend.store import merchants as merchant_store
from merchant_backend.store.db import create_db_engine
from merchant_backend.store.migrate import MIGRATION_LOCK, downgrade, upgrade
from merchant_backend.store.schema import metadata


def test_migrated_database_matches_the_schema_module(engine: Engine) -> None:
    # `engine` was brought to head by store.migrate.upgrade (SQLite or PostgreSQL run).
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_migrations_go_down_and_up_again(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        upgrade(engine)
        tables = set(inspect(engine).get_table_names())
        assert {t.name for t in metadata.sorted_tables} | {"alembic_version"} == tables
        upgrade(engine, "head")  # idempotent
        downgrade(engine, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(engine)
        assert set(inspect(engine).get_table_names()) == tables
    finally:
        engine.dispose()


# -- Migrations on a live PostgreSQL (a rolling deploy: old processes keep taking deliveries) ---

ADMIN_WAIT = 30.0  # seconds: a deadline for what must happen, never a pause


def _event(merchant_id: str, n: int) -> inbox.NewEvent:
    return inbox.NewEvent(
        merchant_id=merchant_id,
        env="stage",
        event_id=f"evt_migration_{n}",
        type="charge.succeeded",
        created=1_700_000_000 + n,
        object_type="charge",
        object_id=f"ch_{n}",
        payload=b"{}",
        source="webhook",
        handled=True,
    )


def _wait_until(engine: Engine, sql: str, what: str) -> None:
    """Poll ``pg_stat_activity``/``pg_locks`` (from another connection) until ``sql`` finds
    a row: the other thread has reached the point the test needs."""
    deadline = time.monotonic() + ADMIN_WAIT
    with engine.connect() as conn:
        while conn.execute(text(sql)).first() is None:
            conn.rollback()
            assert time.monotonic() < deadline, f"timed out waiting for: {what}"
            time.sleep(0.01)


def _upgrade_in_thread(
    engine: Engine, revision: str
) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            upgrade(engine, revision)
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def _needs_postgresql(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's locks (SQLite has one writer; its migrations take it)")


def test_the_done_index_is_built_while_deliveries_keep_committing(empty_engine: Engine) -> None:
    """0007 builds ix_events_done CONCURRENTLY: while it runs (here: waiting for a delivery's
    open transaction), another delivery's insert commits at once. A plain CREATE INDEX would
    queue that insert behind its SHARE lock until the whole build is done."""
    engine = empty_engine
    _needs_postgresql(engine)
    upgrade(engine, "0006")
    with db.write(engine) as conn:
        merchant_id = merchant_store.create(conn, "Shop")[0].id
    with engine.connect() as open_delivery:
        open_delivery.begin()
        inbox.insert_new(open_delivery, [_event(merchant_id, 1)], 1.0)
        thread, errors = _upgrade_in_thread(engine, "0007")
        try:
            _wait_until(
                engine,
                "SELECT 1 FROM pg_stat_activity WHERE query ILIKE 'CREATE INDEX%' "
                "AND wait_event_type = 'Lock'",
                "the index build waiting on the open delivery",
            )
            with engine.connect() as other:
                other.execute(text("SET LOCAL lock_timeout = '10s'"))  # begins
                assert inbox.insert_new(other, [_event(merchant_id, 2)], 2.0)
                other.commit()
        finally:
            open_delivery.commit()
            thread.join(ADMIN_WAIT)
    assert not thread.is_alive() and not errors, errors
    with engine.connect() as conn:
        valid = conn.execute(
            text("SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_events_done'::regclass")
        ).scalar_one()
        assert valid is True
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0007"
        assert conn.execute(text("SELECT count(*) FROM events")).scalar_one() == 2


def test_an_index_an_interrupted_build_left_invalid_is_built_again(empty_engine: Engine) -> None:
    engine = empty_engine
    _needs_postgresql(engine)
    upgrade(engine, "0007")
    # What an interrupted CREATE INDEX CONCURRENTLY leaves: the index, marked invalid, and the
    # schema's version not moved on.
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE pg_index SET indisvalid = false "
                "WHERE indexrelid = 'ix_events_done'::regclass"
            )
        )
        conn.execute(text("UPDATE alembic_version SET version_num = '0006'"))
    upgrade(engine, "0007")
    with engine.connect() as conn:
        valid = conn.execute(
            text("SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_events_done'::regclass")
        ).scalar_one()
    assert valid is True


def test_processes_starting_together_migrate_one_after_the_other(empty_engine: Engine) -> None:
    """Every serve migrates first: while one process holds the migration lock, another waits
    for it instead of racing it to create the same tables (and says that it waits, so a start
    does not look hung), then finds nothing left to do."""
    engine = empty_engine
    _needs_postgresql(engine)
    with engine.connect() as holder, capture_logs() as logged:
        holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
        holder.commit()
        thread, errors = _upgrade_in_thread(engine, "head")
        try:
            _wait_until(
                engine,
                "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
                "the second migration waiting for the lock",
            )
            assert "alembic_version" not in inspect(engine).get_table_names()
            upgrade_ran_meanwhile = thread.is_alive()
        finally:
            holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
            holder.commit()
    assert any(e["event"].startswith("waiting for another process") for e in logged), logged
    thread.join(ADMIN_WAIT)
    assert upgrade_ran_meanwhile and not thread.is_alive() and not errors, errors
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
