"""Alembic environment: `db.migrate` passes a connection; the `alembic` command builds the
owner's engine from settings alone, without importing the application (no providers, no
queue, no web framework): migrating must not depend on what the code it migrates for loads."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool

from core.settings import load_settings
from db.engine import sqlalchemy_url
from db.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return
    settings = load_settings()
    config.attributes.setdefault("embedding_dim", settings.embedding_dimension)
    # One connection for one command: nothing to pool.
    engine = create_engine(sqlalchemy_url(settings, owner=True), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            run_migrations(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run `docuchat migrate`")
run_migrations_online()
