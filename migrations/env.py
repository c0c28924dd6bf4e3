"""Alembic environment: applies migrations to the connection notifyd hands over (or the URL)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine
from sqlmodel import SQLModel

import notifyd.inbox.models
import notifyd.models  # noqa: F401  (registers notifyd's tables on SQLModel.metadata)
from notifyd.tracking.models import metadata as tracking_metadata

# notifyd's own tables and the tracker's (task_run, attempt), which live on their own metadata.
target_metadata = [SQLModel.metadata, tracking_metadata]


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Use the caller's connection when given, else connect to ``sqlalchemy.url``."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        _run(conn)
        conn.commit()


run_migrations_online()
