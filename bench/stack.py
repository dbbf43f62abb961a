"""What the benchmarks need: an embedded database as `docuchat dev` prepares it, and a
running API to drive."""

from __future__ import annotations

import time

import httpx
from sqlalchemy import Engine

from core.bootstrap import owner_engine
from core.settings import Settings
from db.migrate import upgrade
from db.roles import ensure_app_login
from tools.embedded import EmbeddedPostgres


def wait_healthy(client: httpx.Client, timeout: float = 60) -> None:
    """Wait until the API answers /healthz with 200 (databases, Redis and broker up)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the API did not become healthy")
        time.sleep(0.2)


def database_environ(postgres: EmbeddedPostgres) -> dict[str, str]:
    """An embedded Postgres as `docuchat dev` hands it out: the owner's URL for migrations,
    the app's own login for the API and workers."""
    return {"DATABASE_OWNER_URL": postgres.start(), "DATABASE_URL": postgres.app_url()}


def migrated_owner(settings: Settings) -> Engine:
    """The owner's engine on a database migrated to head, with the app's login made."""
    owner = owner_engine(settings)
    upgrade(owner, settings.embedding_dimension)
    ensure_app_login(owner, settings.database_url or "")
    return owner
