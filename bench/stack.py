"""What the benchmarks need: an embedded database as `docuchat dev` prepares it, the
environment and processes of the API and workers on it, and tenants to drive them as."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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
from standins.model_server import StandIn
from tools.embedded import EmbeddedPostgres, EmbeddedRedis
from usecases.members import create_tenant, get_or_create_user

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".bench"


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
    tenant_id, (headers,) = bench_members(stack, name, 1)
    return tenant_id, headers


def bench_members(stack: Stack, name: str, count: int) -> tuple[uuid.UUID, list[dict[str, str]]]:
    """A new tenant with `count` members: its id, and the headers that sign in as each."""
    with unit_of_work(stack.owner) as session:
        tenant = create_tenant(session, f"{name}-{uuid.uuid4().hex[:6]}", name.title())
        users = [
            get_or_create_user(session, tenant, f"{name}{n}@example.com") for n in range(count)
        ]
    headers = []
    for user in users:
        token = issue_access_token(stack.settings, user.id, tenant.id).token
        headers.append({"Authorization": f"Bearer {token}", "X-Tenant-ID": tenant.slug})
    return tenant.id, headers


def environment(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment of the API and worker processes on a stack: the rate limits out of the
    way (a bench measures the system, not its doors), then `extra`."""
    return os.environ | {
        "APP_ENV": "development",
        "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": settings.redis_url or "",
        "JWT_SECRET": settings.jwt_secret.get_secret_value(),
        "RATE_LIMIT_PER_MINUTE": "10000000",
        "READ_RATE_LIMIT_PER_MINUTE": "10000000",
        **extra,
    }


def answered_by(standin: StandIn) -> dict[str, str]:
    """The environment's part that makes the model server stand-in the workers' chat model."""
    return {"OPENAI_BASE_URL": standin.base_url, "CHAT_PROVIDER": "openai"}


def start_process(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A process of the stack (`tools.devstack`'s API or worker command), its output dropped."""
    return subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def stop_processes(*processes: subprocess.Popen[bytes]) -> None:
    """SIGTERM each, then wait for all: workers finish their messages first."""
    for process in processes:
        process.terminate()
    for process in processes:
        process.wait(timeout=60)


@contextmanager
def running(command: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    process = start_process(command, env)
    try:
        yield process
    finally:
        stop_processes(process)
