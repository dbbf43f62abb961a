"""Apply Alembic migrations from code, and check that the schema fits the configuration."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

import migrations
from core.errors import ConfigurationError


def _config(connection: Connection, embedding_dim: int) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    config.attributes["connection"] = connection
    config.attributes["embedding_dim"] = embedding_dim
    return config


def upgrade(engine: Engine, embedding_dim: int, revision: str = "head") -> None:
    with engine.begin() as conn:
        command.upgrade(_config(conn, embedding_dim), revision)


def downgrade(engine: Engine, embedding_dim: int, revision: str) -> None:
    with engine.begin() as conn:
        command.downgrade(_config(conn, embedding_dim), revision)


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    return ScriptDirectory.from_config(config).get_current_head()


EMBEDDING_WIDTH_SQL = text("""
    SELECT atttypmod FROM pg_attribute
    WHERE attrelid = to_regclass('chunks') AND attname = 'embedding' AND NOT attisdropped
""")


def check_schema(conn: Connection, embedding_dim: int) -> None:
    """Raise ConfigurationError unless the database is at head with a `vector(embedding_dim)`."""
    current, head = current_revision(conn), head_revision()
    if current != head:
        raise ConfigurationError(
            f"the database schema is at revision {current or 'none'}, the code needs {head}: "
            "run `docuchat migrate`"
        )
    check_embedding_width(conn.execute(EMBEDDING_WIDTH_SQL).scalar(), embedding_dim)


def check_embedding_width(width: int | None, embedding_dim: int) -> None:
    if width != embedding_dim:
        raise ConfigurationError(
            f"the database stores {width}-dimensional embeddings (chunks.embedding is "
            f"vector({width})) but the configured embedding provider makes {embedding_dim}: "
            "set EMBEDDING_PROVIDER/EMBEDDING_MODEL back, or use a database made for this "
            "provider"
        )
