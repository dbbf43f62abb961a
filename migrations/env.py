"""Alembic environment: `db.migrate` passes a connection; the `alembic` CLI reads settings."""

from __future__ import annotations

from alembic import context

from db.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return

    from core.bootstrap import owner_engine
    from core.settings import load_settings

    settings = load_settings()
    config.attributes.setdefault("embedding_dim", settings.embedding_dimension)
    engine = owner_engine(settings)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run `docuchat migrate`")
run_migrations_online()
