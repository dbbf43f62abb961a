"""What the benchmarks need: an embedded database as `docuchat dev` prepares it, and a
running API to drive."""

from __future__ import annotations

import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import Engine

from api.signin.tokens import issue_access_token
from bootstrap import owner_engine
from core.settings import Settings, load_settings
from db.engine import unit_of_work
from db.migrate import upgrade
from db.roles import ensure_app_login
from tools.embedded import EmbeddedPostgres, EmbeddedRedis
from usecases.members import create_tenant, get_or_create_user


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


@dataclass
class Stack:
    """A private embedded Postgres and Redis, migrated, as `docuchat dev` prepares them."""

    settings: Settings
    owner: Engine
    postgres: EmbeddedPostgres
    redis: EmbeddedRedis

    def stop(self) -> None:
        self.owner.dispose()
        self.redis.stop()
        self.postgres.stop()


def fresh_stack(folder: Path, jwt_secret: str) -> Stack:
    """A stack in an emptied `folder`."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    postgres, redis = EmbeddedPostgres(folder), EmbeddedRedis(folder)
    settings = load_settings({
        **database_environ(postgres), "REDIS_URL": redis.start(), "JWT_SECRET": jwt_secret,
    })  # fmt: skip
    return Stack(settings, migrated_owner(settings), postgres, redis)


def bench_tenant(stack: Stack, name: str) -> tuple[uuid.UUID, dict[str, str]]:
    """A new tenant with one member: its id, and the headers that sign in as the member."""
    with unit_of_work(stack.owner) as session:
        tenant = create_tenant(session, f"{name}-{uuid.uuid4().hex[:6]}", name.title())
        user = get_or_create_user(session, tenant, f"{name}@example.com")
    token = issue_access_token(stack.settings, user.id, tenant.id).token
    return tenant.id, {"Authorization": f"Bearer {token}", "X-Tenant-ID": tenant.slug}
