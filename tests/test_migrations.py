"""The schema comes from Alembic migrations only, and they build exactly what schema.py
describes (a table or index added to one but not the other fails here)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect

from merchant_backend.store.db import create_db_engine
from merchant_backend.store.migrate import alembic_config, upgrade
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
        cfg = alembic_config()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(engine)
        assert set(inspect(engine).get_table_names()) == tables
    finally:
        engine.dispose()
