"""Where the admin commands find the database: the configured one as its owner, or the
embedded server of the data folder (joined when `docuchat dev` runs, started and stopped
again when not), migrated on the way."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import click
from dotenv import dotenv_values
from sqlalchemy import Engine

from bootstrap import owner_engine
from core.settings import Settings, load_settings
from db.migrate import check_schema, upgrade
from db.roles import ensure_app_login
from tools.embedded import EmbeddedPostgres, secret_from_data_dir

DATA_DIR_HELP = "Folder of the embedded Postgres and Redis (default: DATA_DIR or .docuchat)."


def configured(name: str) -> str | None:
    return os.environ.get(name) or dotenv_values(".env").get(name) or None


def resolve_data_dir(option: Path | None) -> Path:
    return (option or Path(configured("DATA_DIR") or ".docuchat")).resolve()


def settings_for(data_dir: Path) -> Settings:
    """The settings of the environment and `.env`, pointed at this data folder; outside
    production, the folder's own JWT secret when none is set (every process of a `docuchat
    dev` agrees on it)."""
    overrides: dict[str, object] = {"data_dir": data_dir}
    if not configured("JWT_SECRET") and configured("APP_ENV") != "production":
        overrides["jwt_secret"] = secret_from_data_dir(data_dir)
    return load_settings(overrides=overrides)


@contextlib.contextmanager
def owner_database(data_dir: Path) -> Iterator[tuple[Settings, Engine, bool]]:
    """The owner's engine on DATABASE_OWNER_URL when a database is configured, else on the
    data folder's embedded server (joined if running, started and stopped again if not); the
    flag says which."""
    settings = settings_for(data_dir)
    postgres = None
    if not settings.database_url and not settings.database_owner_url:
        postgres = EmbeddedPostgres(data_dir)
        owner_url = postgres.start()
        settings = settings.model_copy(
            update={"database_owner_url": owner_url, "database_url": postgres.app_url()}
        )
    engine = None
    try:
        engine = owner_engine(settings)
        yield settings, engine, postgres is not None
    finally:
        if engine is not None:
            engine.dispose()
        if postgres is not None:
            postgres.stop()


@contextlib.contextmanager
def admin_database(data_dir: Path) -> Iterator[tuple[Settings, Engine]]:
    """A database whose schema fits the code: the embedded one is migrated on the way."""
    with owner_database(data_dir) as (settings, engine, embedded):
        if embedded:
            upgrade(engine, settings.embedding_dimension)
            ensure_app_login(engine, settings.database_url or "")
        with engine.connect() as conn:
            check_schema(conn, settings.embedding_dimension)
        yield settings, engine


data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help=DATA_DIR_HELP
)
