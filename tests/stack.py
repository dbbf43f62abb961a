"""The test stack's parts: settings, databases of a test's own, Redis databases handed out,
the API in a thread and workers in child processes, and checks made through the database.
conftest.py makes fixtures of them; a test module imports from here what it builds for itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis
import uvicorn
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from api.app import create_app
from api.http_protocol import HeadTimeoutProtocol
from core.settings import Settings, load_settings
from db.roles import ensure_app_login
from tools.devstack import api_command
from tools.embedded import APP_LOGIN, EmbeddedPostgres, EmbeddedRedis, free_port

TEST_JWT_SECRET = "test-secret-" + "x" * 40
SERVER_TIME_ZONE = "Pacific/Kiritimati"


@dataclass
class Services:
    postgres: EmbeddedPostgres
    redis: EmbeddedRedis
    database_url: str  # the app's own login, as the API and workers sign in
    owner_url: str  # the schema's owner (the server's superuser): migrations, admin commands
    redis_url: str
    root: Path


def settings_for(services: Services, **overrides: str) -> Settings:
    environ = {
        "APP_ENV": "test",
        "DATABASE_URL": services.database_url,
        "DATABASE_OWNER_URL": services.owner_url,
        "REDIS_URL": services.redis_url,
        "JWT_SECRET": TEST_JWT_SECRET,
        "DATA_DIR": str(services.root),
        # Tests share one database among several Redis databases, so a reaper would take
        # another test's jobs for lost ones; the tests of the reaper turn it on.
        "REAPER_INTERVAL_SECONDS": "3600",
        # Tests poll jobs ten times a second; the tests of the read budget set their own.
        "READ_RATE_LIMIT_PER_MINUTE": "100000",
    }
    environ.update(overrides)
    return load_settings(environ)


def auth_settings(services: Services, smtp_port: int, **overrides: str) -> Settings:
    """Settings whose sign-in codes go to the test SMTP server on `smtp_port`."""
    base = {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "SMTP_STARTTLS": "false",
        "RATE_LIMIT_PER_MINUTE": "10000",
    }
    return settings_for(services, **(base | overrides))


@dataclass
class OwnDatabase:
    """A migrated database of a test's own (and, for a fleet, a Redis database too)."""

    owner_url: str
    app_url: str  # the app's login
    engine: Engine  # the owner's
    redis_url: str | None = None

    def settings(self, services: Services, **overrides: str) -> Settings:
        urls = {"DATABASE_URL": self.app_url, "DATABASE_OWNER_URL": self.owner_url}
        if self.redis_url:
            urls["REDIS_URL"] = self.redis_url
        return settings_for(services, **(urls | overrides))


@contextmanager
def copied_database(services: Services, template_database: str) -> Iterator[OwnDatabase]:
    """A new database copied from the migrated template, dropped at the end."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = admin_url(services)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
        conn.execute(f"ALTER DATABASE \"{name}\" SET TimeZone = '{SERVER_TIME_ZONE}'")
    owner_url = make_url(services.owner_url).set(database=name).render_as_string(False)
    engine = create_engine(owner_url, pool_size=2, pool_pre_ping=True)
    ensure_app_login(engine, app_url_of(owner_url))
    try:
        yield OwnDatabase(owner_url, app_url_of(owner_url), engine)
    finally:
        engine.dispose()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def admin_url(services: Services) -> str:
    url = make_url(services.owner_url)
    return url.set(drivername="postgresql", database="postgres").render_as_string(False)


def app_url_of(owner_url: str) -> str:
    """The same database as `owner_url`, signed in as the app's own login."""
    return make_url(owner_url).set(username=APP_LOGIN).render_as_string(hide_password=False)


class LiveServer:
    """The real app under uvicorn on a free loopback port, in a background thread."""

    def __init__(self, settings: Settings, protocol: type[Any] = HeadTimeoutProtocol) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            http=protocol,
            ws_max_size=settings.ws_max_frame_bytes,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def worker_environment(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a worker process needs to join the test stack."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DATABASE_", "REDIS_", "EMBEDDING_", "OPENAI_", "CHAT_"))
    }
    environ |= {
        "APP_ENV": "test",
        "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": settings.redis_url or "",
        "JWT_SECRET": TEST_JWT_SECRET,
        "DATA_DIR": str(settings.data_dir),
        "WORKER_HEARTBEAT_TIMEOUT_SECONDS": str(settings.worker_heartbeat_timeout_seconds),
        "EMBEDDING_PROVIDER": settings.embedding_provider,
        "CHAT_PROVIDER": settings.chat_provider,
        "OPENAI_TIMEOUT_SECONDS": str(settings.openai_timeout_seconds),
        "OPENAI_MAX_RETRIES": str(settings.openai_max_retries),
        "ALLOWED_MODELS": ",".join(settings.allowed_models),
        "PDF_MEMORY_LIMIT_MB": str(settings.pdf_memory_limit_mb),
        "PDF_CPU_SECONDS": str(settings.pdf_cpu_seconds),
        "PDF_PAGE_CPU_SECONDS": str(settings.pdf_page_cpu_seconds),
        "INGEST_BATCH_PAGES": str(settings.ingest_batch_pages),
        "TENANT_INGEST_CONCURRENCY": str(settings.tenant_ingest_concurrency or ""),
        "REAPER_INTERVAL_SECONDS": str(settings.reaper_interval_seconds),
        "REAPER_GRACE_SECONDS": str(settings.reaper_grace_seconds),
    }
    if settings.openai_base_url:
        environ["OPENAI_BASE_URL"] = settings.openai_base_url
    return environ | extra


class WorkerProcess:
    """`dramatiq workers.broker:setup workers.actors`, the Procfile's workers (of both queues
    unless `queues` says which), as a child process."""

    def __init__(
        self,
        settings: Settings,
        threads: int = 2,
        queues: tuple[str, ...] = (),
        processes: int = 1,
        **extra: str,
    ) -> None:
        _check_one_fleet_per_database(settings)
        only = ["--queues", *queues] if queues else []
        self.command = [
            sys.executable, "-m", "dramatiq", "workers.broker:setup", "workers.actors", *only,
            "--processes", str(processes), "--threads", str(threads),
            "--worker-shutdown-timeout", "5000",
        ]  # fmt: skip
        self.environ = worker_environment(settings, **extra)
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> WorkerProcess:
        self.process = subprocess.Popen(self.command, env=self.environ, start_new_session=True)
        return self

    def kill(self) -> None:
        """SIGKILL the whole process group, as if the machine vanished."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        if self.process.poll() is None:
            # The main process only: it passes SIGTERM on to its worker processes, and a
            # worker process that gets a second one exits at once instead of finishing.
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


SHARED: dict[str, str] = {}  # the run's shared database and Redis (the `services` fixture)


def _check_one_fleet_per_database(settings: Settings) -> None:
    """Every worker on a database claims batches of pages from all of it: a worker with a
    Redis of its own (its own queues, heartbeats, counters) on the shared database would take
    other tests' work and leave its own to others, so it needs `own_database`."""
    shared_database = settings.database_url == SHARED.get("database_url")
    assert not (shared_database and settings.redis_url != SHARED.get("redis_url")), (
        "a worker on a Redis of its own needs a database of its own (the own_database fixture)"
    )


@contextmanager
def api_process(settings: Settings, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """The API as the Procfile runs it (uvicorn in a process of its own) on `port`, healthy."""
    environ = os.environ | {
        "APP_ENV": "test",
        "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": settings.redis_url or "",
        "JWT_SECRET": TEST_JWT_SECRET,
        "RATE_LIMIT_PER_MINUTE": "100000",
    }
    process = subprocess.Popen(api_command("127.0.0.1", port), env=environ)
    wait_until_healthy(f"http://127.0.0.1:{port}", process)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def wait_until_healthy(base: str, process: subprocess.Popen[Any], timeout: float = 60) -> None:
    """Wait for an API run as a process to answer /healthz with 200; fail if it exits."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.1)


class RedisDatabases:
    """The numbered databases of the run's Redis server, handed out one at a time: a test or
    module with queues of its own (workers no other test's API reaches, or none at all) leases
    one, emptied, and gives it back when done. Database 0 is the shared workers'."""

    def __init__(self, redis_url: str, count: int = 16) -> None:
        self.base = redis_url.rsplit("/", 1)[0]
        self.free = list(range(1, count))

    @contextmanager
    def lease(self) -> Iterator[str]:
        assert self.free, "every Redis database is leased: give some back sooner"
        number = self.free.pop(0)
        url = f"{self.base}/{number}"
        with redis.Redis.from_url(url) as client:
            client.flushdb()
        try:
            yield url
        finally:
            self.free.append(number)


def assert_saved_once(
    client: httpx.Client, engine: Engine, started: dict[str, Any], reply: str
) -> int:
    """The answer `started` is saved once, as `reply`, its usage counted once per kind;
    returns how many times the sweep sent its job again."""
    messages = client.get(f"/v1/sessions/{started['session_id']}/messages").json()
    assistant = [m["content"] for m in messages["messages"] if m["role"] == "assistant"]
    assert assistant == [reply]
    with engine.connect() as conn:
        kinds = conn.execute(
            text("SELECT kind FROM usage_records WHERE job_id = :j ORDER BY kind"),
            {"j": started["job_id"]},
        ).scalars()
        assert list(kinds) == ["chat", "embedding"]  # counted once each
        requeues = conn.execute(
            text("SELECT requeues FROM jobs WHERE id = :j"), {"j": started["job_id"]}
        ).scalar_one()
    return int(requeues)
