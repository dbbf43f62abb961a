"""Real services for the tests: an embedded Postgres and Redis per run, a real HTTP server.

Each run gets its own temporary folder (unix socket for Postgres, a free port for Redis), so two
runs on one machine never collide. The schema is built by `alembic upgrade head`.
"""

from __future__ import annotations

import logging
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
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url

from api.app import create_app
from api.http_protocol import HeadTimeoutProtocol
from bootstrap import owner_engine
from core.settings import Settings, load_settings
from db.migrate import upgrade
from db.roles import ensure_app_login
from tests.auth_helpers import Inbox
from tests.ingest_helpers import tenant_client
from tests.openai_standin import StandIn
from tools.embedded import APP_LOGIN, EmbeddedPostgres, EmbeddedRedis, free_port

TEST_JWT_SECRET = "test-secret-" + "x" * 40
SERVER_TIME_ZONE = "Pacific/Kiritimati"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fast tier: every test that neither uses the shared services nor starts a stack of
    its own (`make test-fast`)."""
    for item in items:
        if "services" not in getattr(item, "fixturenames", ()) and not item.get_closest_marker(
            "stack"
        ):
            item.add_marker(pytest.mark.fast)


@dataclass
class Services:
    postgres: EmbeddedPostgres
    redis: EmbeddedRedis
    database_url: str  # the app's own login, as the API and workers sign in
    owner_url: str  # the schema's owner (the server's superuser): migrations, admin commands
    redis_url: str
    root: Path


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    root = tmp_path_factory.mktemp("stack")
    postgres = EmbeddedPostgres(root)
    redis = EmbeddedRedis(root)
    owner_url = postgres.start()
    redis_url = redis.start()
    try:
        _SHARED.update(database_url=postgres.app_url(), redis_url=redis_url)
        yield Services(postgres, redis, postgres.app_url(), owner_url, redis_url, root)
    finally:
        redis.stop()
        postgres.stop()
        # The in-process servers sent all logging to stderr; what is logged at exit is noise.
        logging.getLogger().handlers.clear()


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


@pytest.fixture(scope="session")
def settings(services: Services) -> Settings:
    return settings_for(services)


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[Engine]:
    """The test database (the owner's engine), migrated to head once per run, with the app's
    login made as `docuchat migrate` makes it."""
    engine = owner_engine(settings, pool_size=5)
    upgrade(engine, settings.embedding_dimension)
    ensure_app_login(engine, settings.database_url or "")
    # Far from UTC on purpose (UTC+14): no answer may depend on the database's time zone.
    with engine.begin() as conn:
        name = conn.exec_driver_sql("SELECT current_database()").scalar_one()
        conn.exec_driver_sql(f"ALTER DATABASE \"{name}\" SET TimeZone = '{SERVER_TIME_ZONE}'")
    engine.dispose()  # connections made from here on start in that zone
    yield engine
    engine.dispose()


@pytest.fixture
def empty_database(services: Services) -> Iterator[str]:
    """A brand-new database on the test server, dropped afterwards; yields its owner's URL
    (`app_url_of` gives the app login's)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = make_url(services.owner_url)
    admin = _admin_url(services)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class OwnDatabase:
    """A migrated database of a test's own."""

    owner_url: str
    app_url: str  # the app's login
    engine: Engine  # the owner's

    def settings(self, services: Services, **overrides: str) -> Settings:
        urls = {"DATABASE_URL": self.app_url, "DATABASE_OWNER_URL": self.owner_url}
        return settings_for(services, **(urls | overrides))


TEMPLATE_DATABASE = "docuchat_template"


@pytest.fixture(scope="session")
def template_database(services: Services, settings: Settings) -> str:
    """A migrated database that `own_database` copies (a copy takes a fraction of a second,
    a migration several)."""
    admin = _admin_url(services)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{TEMPLATE_DATABASE}"')
    url = make_url(services.owner_url).set(database=TEMPLATE_DATABASE)
    owner_url = url.render_as_string(hide_password=False)
    template = owner_engine(settings.model_copy(update={"database_owner_url": owner_url}))
    try:
        upgrade(template, settings.embedding_dimension)
    finally:
        template.dispose()
    return TEMPLATE_DATABASE


@pytest.fixture
def own_database(services: Services, template_database: str) -> Iterator[OwnDatabase]:
    """A database of the test's own. The workers of one database are one fleet: each claims
    the fairest batch of pages of any tenant in it. A test whose workers differ (another
    Redis, other limits or providers) or that must see only its own jobs needs its own."""
    with copied_database(services, template_database) as database:
        yield database


@contextmanager
def copied_database(services: Services, template_database: str) -> Iterator[OwnDatabase]:
    """A new database copied from the migrated template, dropped at the end."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = _admin_url(services)
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


def _admin_url(services: Services) -> str:
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


@pytest.fixture
def restore_environ() -> Iterator[None]:
    """CLI commands set variables for their children; put the process environment back."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


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


_SHARED: dict[str, str] = {}  # the run's shared database and Redis


def _check_one_fleet_per_database(settings: Settings) -> None:
    """Every worker on a database claims batches of pages from all of it: a worker with a
    Redis of its own (its own queues, heartbeats, counters) on the shared database would take
    other tests' work and leave its own to others, so it needs `own_database`."""
    shared_database = settings.database_url == _SHARED.get("database_url")
    assert not (shared_database and settings.redis_url != _SHARED.get("redis_url")), (
        "a worker on a Redis of its own needs a database of its own (the own_database fixture)"
    )


@pytest.fixture(scope="module")
def standin() -> Iterator[StandIn]:
    """The OpenAI-compatible stand-in for a module's tests (a module that needs another reply
    or dimension defines its own)."""
    with StandIn() as server:
        yield server


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis of the test's own, which it may kill, stop (SIGSTOP) or empty."""
    server = EmbeddedRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        if server.pid:
            os.kill(server.pid, signal.SIGCONT)  # a test that failed mid-freeze leaves it stopped
        server.stop()


@pytest.fixture(scope="module")
def fleet(services: Services, template_database: str) -> Iterator[OwnDatabase]:
    """A database for a module's own workers (see `own_database`)."""
    with copied_database(services, template_database) as database:
        yield database


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server on loopback: its inbox and port."""
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture(scope="session")
def worker(settings: Settings, engine: Engine) -> Iterator[WorkerProcess]:
    """One worker process serving the whole test run."""
    with WorkerProcess(settings) as process:
        yield process


@pytest.fixture(scope="module")
def api_settings(services: Services) -> Settings:
    """The API's settings for a module's tests (no rate limit in the way); a module that
    needs others defines its own `api_settings`, and `server` and `client` follow it."""
    return settings_for(services, RATE_LIMIT_PER_MINUTE="100000")


@pytest.fixture(scope="module")
def server(api_settings: Settings, engine: Engine, worker: WorkerProcess) -> Iterator[LiveServer]:
    """The API on `api_settings`, served by the run's worker."""
    with LiveServer(api_settings) as live:
        yield live


@pytest.fixture
def client(server: LiveServer, engine: Engine, api_settings: Settings) -> Iterator[httpx.Client]:
    """A new tenant's member, signed in to `server`."""
    with tenant_client(engine, api_settings, server.url) as member:
        yield member


@pytest.fixture
def cli(
    services: Services, engine: Engine, restore_environ: None, monkeypatch: pytest.MonkeyPatch
) -> CliRunner:
    """The `docuchat` command, as an operator runs it against the test database."""
    monkeypatch.setenv("DATABASE_URL", services.database_url)
    monkeypatch.setenv("DATABASE_OWNER_URL", services.owner_url)
    monkeypatch.setenv("JWT_SECRET", TEST_JWT_SECRET)
    monkeypatch.setenv("APP_ENV", "test")
    return CliRunner()


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
