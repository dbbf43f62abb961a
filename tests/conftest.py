"""Real services for the tests: an embedded Postgres and Redis per run, a real HTTP server.

Each run gets its own temporary folder (unix socket for Postgres, a free port for Redis), so two
runs on one machine never collide. The schema is built by `alembic upgrade head`.
"""

from __future__ import annotations

import logging
import os
import signal
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from aiosmtpd.controller import Controller
from click.testing import CliRunner
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from bootstrap import owner_engine
from core.settings import Settings
from db.migrate import upgrade
from db.roles import ensure_app_login
from standins.model_server import StandIn
from tests.auth_helpers import Inbox
from tests.ingest_helpers import tenant_client
from tests.stack import (
    SERVER_TIME_ZONE,
    SHARED,
    TEST_JWT_SECRET,
    LiveServer,
    OwnDatabase,
    RedisDatabases,
    Services,
    WorkerProcess,
    admin_url,
    copied_database,
    settings_for,
)
from tools.embedded import EmbeddedPostgres, EmbeddedRedis, free_port


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The fast tier: every test that neither uses the shared services nor starts a stack of
    its own (`make test-fast`)."""
    for item in items:
        if "services" not in getattr(item, "fixturenames", ()) and not item.get_closest_marker(
            "stack"
        ):
            item.add_marker(pytest.mark.fast)


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    root = tmp_path_factory.mktemp("stack")
    postgres = EmbeddedPostgres(root)
    redis = EmbeddedRedis(root)
    owner_url = postgres.start()
    redis_url = redis.start()
    try:
        SHARED.update(database_url=postgres.app_url(), redis_url=redis_url)
        yield Services(postgres, redis, postgres.app_url(), owner_url, redis_url, root)
    finally:
        redis.stop()
        postgres.stop()
        # The in-process servers sent all logging to stderr; what is logged at exit is noise.
        logging.getLogger().handlers.clear()


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
    admin = admin_url(services)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


TEMPLATE_DATABASE = "docuchat_template"


@pytest.fixture(scope="session")
def template_database(services: Services, settings: Settings) -> str:
    """A migrated database that `own_database` copies (a copy takes a fraction of a second,
    a migration several)."""
    admin = admin_url(services)
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


@pytest.fixture
def restore_environ() -> Iterator[None]:
    """CLI commands set variables for their children; put the process environment back."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def _standin_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    mark = request.node.get_closest_marker("standin")
    return dict(mark.kwargs) if mark else {}


@pytest.fixture(scope="module")
def standin(request: pytest.FixtureRequest) -> Iterator[StandIn]:
    """The OpenAI-compatible stand-in for a module's tests, set as the module's mark says
    (`pytestmark = pytest.mark.standin(reply=..., piece_delay=...)`)."""
    with StandIn(**_standin_settings(request)) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_standin(request: pytest.FixtureRequest) -> None:
    """Every test that uses the stand-in finds it as its module set it, with nothing
    recorded."""
    if "standin" in request.fixturenames:
        standin: StandIn = request.getfixturevalue("standin")
        standin.reset(**_standin_settings(request))


@pytest.fixture(scope="session")
def redis_databases(services: Services) -> RedisDatabases:
    return RedisDatabases(services.redis_url)


@pytest.fixture
def redis_database(redis_databases: RedisDatabases) -> Iterator[str]:
    """The URL of an emptied Redis database of the test's own (queues no other test uses)."""
    with redis_databases.lease() as url:
        yield url


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
def module_redis_database(redis_databases: RedisDatabases) -> Iterator[str]:
    """The URL of an emptied Redis database for a module's own workers and servers."""
    with redis_databases.lease() as url:
        yield url


@pytest.fixture(scope="module")
def fleet(
    services: Services, template_database: str, redis_databases: RedisDatabases
) -> Iterator[OwnDatabase]:
    """A database and a Redis database for a module's own workers and servers (see
    `own_database`): its settings use both."""
    with (
        copied_database(services, template_database) as database,
        redis_databases.lease() as redis_url,
    ):
        yield replace(database, redis_url=redis_url)


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
