"""Alembic environment: always run on a connection handed in by gatehouse."""

from __future__ import annotations

from alembic import context

from gatehouse.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
