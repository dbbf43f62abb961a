"""Guard tests for project rules, read from the code itself: how the packages depend on one
another, where engines and Redis clients are made, what the pipeline may import, that
importing the service connects to nothing, that migrating imports no more than settings and
the schema, and that every actor states its retry policy."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import dramatiq
from sqlalchemy import create_engine

from db.migrate import current_revision, head_revision
from transport.broker import INGEST_ACTOR, QUEUES

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "pipeline", "db", "migrations", "transport", "usecases", "api", "workers")
PACKAGES += ("tools",)

# Lower layers never import higher ones (docs/architecture.md draws them).
LAYERS = {
    "core": 0,  # settings, errors, logs, redaction
    "pipeline": 1,
    "db": 2,
    "migrations": 2,
    "transport": 3,
    "usecases": 4,
    "api": 5,
    "workers": 5,
    "core.bootstrap": 6,  # builds the parts of every layer
    "tools": 7,
}
# The entry points that call bootstrap(settings): the API's lifespan and a worker process's
# middleware (and tools, tests, benchmarks).
BOOTSTRAP_CALLERS = {"api.resources", "workers.services"}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(p for p in parts if p != "__init__")] = path
    return found


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def _layer(module: str) -> int | None:
    matches = [name for name in LAYERS if module == name or module.startswith(name + ".")]
    return LAYERS[max(matches, key=len)] if matches else None


def test_no_module_imports_a_higher_layer() -> None:
    wrong = []
    for module, path in _modules().items():
        own = _layer(module)
        for imported in _imports(path):
            theirs = _layer(imported)
            if own is None or theirs is None or theirs <= own:
                continue
            calls_bootstrap = imported == "core.bootstrap" or imported.startswith("core.bootstrap.")
            if calls_bootstrap and module in BOOTSTRAP_CALLERS:
                continue
            wrong.append(f"{module} imports {imported}")
        top = module.split(".")[0]
        for imported in _imports(path):
            if {top, imported.split(".")[0]} == {"api", "workers"}:
                wrong.append(f"{module} imports {imported}: the API and the workers share no code")
    assert sorted(set(wrong)) == []


BUILDS_A_CONNECTION = re.compile(
    r"\b(create_engine|create_async_engine|StrictRedis|RedisStorage|ConnectionPool)\("
    r"|\bRedis(\.from_url)?\("
)


def test_engines_and_redis_clients_are_built_only_by_the_composition_root() -> None:
    """And by the `alembic` command's environment: a program of its own, which must migrate
    without importing the application the root builds."""
    builders = {
        module
        for module, path in _modules().items()
        if BUILDS_A_CONNECTION.search(path.read_text())
    }
    assert builders == {"core.bootstrap", "migrations.env"}


PIPELINE_MAY_NOT_IMPORT = (
    "core.settings", "core.bootstrap", "litestar", "uvicorn", "starlette", "dramatiq", "redis",
    "sqlalchemy", "psycopg", "pgvector", "alembic", "api", "workers", "db", "transport",
    "usecases", "tools",
)  # fmt: skip


def test_the_pipeline_imports_no_settings_web_queue_or_database_library() -> None:
    wrong = [
        f"{module} imports {imported}"
        for module, path in _modules().items()
        if module.startswith("pipeline")
        for imported in _imports(path)
        if any(imported == f or imported.startswith(f + ".") for f in PIPELINE_MAY_NOT_IMPORT)
    ]
    assert wrong == []


NO_CONNECTIONS = """
import socket
import psycopg

def refuse(*args, **kwargs):
    raise AssertionError(f"a connection was attempted at import: {args!r}")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
psycopg.Connection.connect = classmethod(refuse)

import api.app, workers.actors, workers.broker, tools.cli  # noqa: F401, E401
from api.app import create_app
from core.settings import load_settings

create_app(load_settings({
    "JWT_SECRET": "x" * 40,
    "DATABASE_URL": "postgresql://docuchat_app@127.0.0.1:1/docuchat",
    "REDIS_URL": "redis://127.0.0.1:1/0",
}))
print("no connection")
"""


def _run_python(script: str, **environ: str) -> str:
    """What `script` prints, run by a fresh interpreter without the service's settings from
    this environment, with `environ` instead."""
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "JWT_"))
    }
    run = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=environment | environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout.strip()


def test_importing_the_service_and_making_the_app_connects_to_nothing() -> None:
    """Nothing connects, reads the environment or builds a client at import: the actors, the
    broker's module, the CLI, and the app itself before its lifespan starts."""
    assert _run_python(NO_CONNECTIONS) == "no connection"


# What `alembic upgrade head` runs, and which of the application's heavy parts it loaded.
ALEMBIC_UPGRADE = """
import sys
from alembic import command
from alembic.config import Config

command.upgrade(Config("alembic.ini"), "head")
print(sorted(m for m in ("openai", "numpy", "dramatiq", "litestar", "redis") if m in sys.modules))
"""


def test_the_alembic_command_migrates_without_importing_the_application(
    empty_database: str,
) -> None:
    """The `alembic` command builds its engine from settings alone: migrating imports no
    provider (openai, numpy), no queue (dramatiq) and no web framework."""
    loaded = _run_python(ALEMBIC_UPGRADE, DATABASE_OWNER_URL=empty_database, JWT_SECRET="x" * 40)
    assert loaded == "[]"
    engine = create_engine(empty_database)
    try:
        with engine.connect() as conn:
            assert current_revision(conn) == head_revision()
    finally:
        engine.dispose()


def test_every_actor_sets_retries_and_a_time_limit() -> None:
    import workers.actors

    actors = {
        actor.actor_name: actor
        for actor in vars(workers.actors).values()
        if isinstance(actor, dramatiq.Actor)
    }
    assert INGEST_ACTOR in actors
    for name, actor in actors.items():
        assert "max_retries" in actor.options, f"{name} must set max_retries"
        assert "time_limit" in actor.options, f"{name} must set time_limit"
        assert actor.queue_name in QUEUES, f"{name} uses an undeclared queue"
