"""Alembic environment: runs against the connection or URL handed over by ``store.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from merchant_backend.store.db import create_db_engine
from merchant_backend.store.schema import metadata

config = context.config
target_metadata = metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        # Each migration commits on its own: one may need to step outside a transaction
        # (``autocommit_block``), which would otherwise commit the ones before it half-way.
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = create_db_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
