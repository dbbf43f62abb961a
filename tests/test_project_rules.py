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
from transport.queue import INGEST_ACTOR, QUEUES

ROOT = Path(__file__).resolve().parent.parent

# Each module's layer, lowest first; a module imports only from its own layer and those below
# (docs/architecture.md draws them). The composition root sits above everything it builds,
# and the entry points that call it (the API's lifespan, each worker process's broker setup,
# the CLI) above it, as cosmicpython's entrypoints sit above its bootstrap.
LAYERS = {
    "core": 0,  # settings, errors, logs, redaction: imports nothing of ours
    "pipeline": 1,
    "db": 2,
    "migrations": 2,  # the `alembic` command's environment: settings and the schema only
    "transport": 3,  # the queue, the streams, and the use cases' adapters (mail, codes, limits)
    "usecases": 4,
    "bootstrap": 5,  # the composition root: builds the parts of every layer below
    "api": 6,
    "workers": 6,
    "tools": 7,
    "standins": 8,  # what tests, benches and examples run against: the service never imports it
}


def _modules() -> dict[str, Path]:
    found = {}
    for top in LAYERS:
        if (ROOT / f"{top}.py").is_file():
            found[top] = ROOT / f"{top}.py"
            continue
        for path in (ROOT / top).rglob("*.py"):
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
    return LAYERS.get(module.split(".")[0])


def test_every_module_of_ours_has_a_layer() -> None:
    tops = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    tops |= {path.stem for path in ROOT.glob("*.py")}
    # Beside the service: the tests, the benchmarks and the examples, which may use any layer.
    assert tops - {"tests", "bench", "examples"} == set(LAYERS)


def test_no_module_imports_a_higher_layer() -> None:
    wrong = []
    for module, path in _modules().items():
        own = _layer(module)
        for imported in _imports(path):
            theirs = _layer(imported)
            if own is not None and theirs is not None and theirs > own:
                wrong.append(f"{module} imports {imported}")
            if {module.split(".")[0], imported.split(".")[0]} == {"api", "workers"}:
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
    assert builders == {"bootstrap", "migrations.env"}


PIPELINE_MAY_NOT_IMPORT = (
    "core.settings", "bootstrap", "litestar", "uvicorn", "starlette", "dramatiq", "redis",
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


def test_benches_examples_and_stand_ins_import_nothing_from_the_tests() -> None:
    """What the tests share with the benches and examples lives in `standins/`, and a test
    module takes fixtures from conftest.py by name, never its classes by import, nor another
    test module's helpers (what they share is in tests/stack.py)."""
    wrong = [
        f"{path.relative_to(ROOT)} imports {imported}"
        for folder in ("bench", "examples", "standins", "tests")
        for path in (ROOT / folder).rglob("*.py")
        for imported in _imports(path)
        if (folder != "tests" and imported.split(".")[0] == "tests")
        or imported in ("conftest", "tests.conftest")
        or imported.startswith("tests.test_")
    ]
    assert wrong == []
