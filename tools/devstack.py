"""`docuchat dev`: the whole service in the foreground under one supervisor.

Embedded Postgres and Redis start only when DATABASE_URL / REDIS_URL are unset; the API and
the workers run the same commands as the Procfile, so both setups share one code path. The
embedded Postgres is migrated as its superuser and served to the API and workers as the
app's own login, as a real deployment is.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bootstrap import owner_engine
from core.errors import ConfigurationError
from core.settings import WS_MAX_FRAME_BYTES, Settings
from db.engine import unit_of_work
from db.migrate import check_schema, upgrade
from db.roles import ensure_app_login
from tools.embedded import EmbeddedPostgres, EmbeddedRedis
from usecases.members import ensure_tenant

DEFAULT_TENANT = "demo"
STOP_TIMEOUT_SECONDS = 15.0
READY_TIMEOUT_SECONDS = 60.0


@dataclass
class DevOptions:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000


def api_command(host: str, port: int, ws_max_frame_bytes: int = WS_MAX_FRAME_BYTES) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "api.app:create_app_from_env", "--factory",
        "--host", host, "--port", str(port), "--no-server-header",
        "--http", "api.http_protocol:HeadTimeoutProtocol",  # a request's head is due in 10 s
        "--ws-max-size", str(ws_max_frame_bytes),  # larger WebSocket messages: closed, 1009
        "--no-access-log",  # the app writes its own, with the request id (api/request_log.py)
    ]  # fmt: skip


# When the API and the workers share one machine, the workers' many threads outweigh the API's
# one event loop in the kernel's fair share, and streamed tokens wait in the API: at 200 open
# streams the relay's median added latency was 430 ms, 1.4 ms with the workers at nice 10
# (bench/load.py). `docuchat dev` runs them so; separate machines need nothing.
WORKER_NICENESS = 10


def worker_command(
    processes: int, threads: int, niceness: int = 0, queues: tuple[str, ...] = ()
) -> list[str]:
    """The Procfile's worker: of `queues` only (all by default)."""
    nice = ["nice", "-n", str(niceness)] if niceness and shutil.which("nice") else []
    only = ["--queues", *queues] if queues else []
    return [
        *nice, sys.executable, "-m", "dramatiq", "workers.broker:setup", "workers.actors",
        *only, "--processes", str(processes), "--threads", str(threads),
        "--worker-shutdown-timeout", str(int(STOP_TIMEOUT_SECONDS * 1000 * 0.8)),
    ]  # fmt: skip


def fleet_commands(settings: Settings, niceness: int = 0) -> dict[str, list[str]]:
    """The Procfile's two workers, sized by settings: answers in processes of their own, so
    a question never waits for a thread that ingestion holds."""
    return {
        "worker-chat": worker_command(
            settings.chat_worker_processes, settings.chat_worker_threads, niceness, ("chat",)
        ),
        "worker-ingest": worker_command(
            settings.ingest_worker_processes,
            settings.ingest_worker_threads,
            niceness,
            ("ingest",),
        ),
    }


@contextlib.contextmanager
def exclusive_data_dir(data_dir: Path) -> Iterator[None]:
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / "dev.lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigurationError(
                f"another `docuchat dev` is already running with data folder {data_dir}"
            ) from None
        yield


# A crashed part is started again after a pause that doubles up to the longest; one that ran
# for STEADY_SECONDS before it crashed starts again after the first pause.
FIRST_PAUSE_SECONDS = 1.0
LONGEST_PAUSE_SECONDS = 30.0
STEADY_SECONDS = 60.0


@dataclass
class Part:
    """One part of the stack the supervisor keeps running: `start` starts it, `down` says
    why it is not running (None while it runs)."""

    start: Callable[[], None]
    down: Callable[[], str | None]
    started_at: float = 0.0
    pause: float = FIRST_PAUSE_SECONDS
    restart_at: float | None = None


def exit_reason(process: subprocess.Popen[bytes]) -> str | None:
    """Why a child stopped (its exit code, or the signal that killed it), or None."""
    code = process.poll()
    if code is None:
        return None
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


@dataclass
class Supervisor:
    """Starts the stack's parts, starts again with backoff any that crashes (and says why),
    and stops the child processes in order. A process supervisor's job, for the laptop;
    production leaves it to the process manager (systemd, compose, Kubernetes)."""

    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    parts: dict[str, Part] = field(default_factory=dict)
    stopping: bool = False

    def spawn(self, name: str, command: list[str], env: dict[str, str]) -> None:
        def start() -> None:
            if name in self.children:  # what the crashed one started goes with it
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.children[name].pid, signal.SIGKILL)
            # A session of its own: a terminal Ctrl-C reaches only us; we stop children in order.
            self.children[name] = subprocess.Popen(command, env=env, start_new_session=True)

        self.keep(name, start, lambda: exit_reason(self.children[name]))

    def keep(self, name: str, start: Callable[[], None], down: Callable[[], str | None]) -> None:
        """Start a part (a child process, an embedded server) and keep it running."""
        part = self.parts[name] = Part(start, down)
        start()
        part.started_at = time.monotonic()

    def dead_child(self) -> str | None:
        for name, process in self.children.items():
            if process.poll() is not None:
                return name
        return None

    def heal(self, out: IO[str]) -> None:
        """Notice parts that went down, and start each again once its pause is over."""
        now = time.monotonic()
        for name, part in self.parts.items():
            if part.restart_at is None:
                reason = part.down()
                if reason is None:
                    continue
                if now - part.started_at >= STEADY_SECONDS:
                    part.pause = FIRST_PAUSE_SECONDS
                part.restart_at = now + part.pause
                print(
                    f"docuchat dev: {name} {reason}; starting it again in {part.pause:g} s",
                    file=out,
                    flush=True,
                )
                part.pause = min(2 * part.pause, LONGEST_PAUSE_SECONDS)
            elif now >= part.restart_at:
                try:
                    part.start()
                except Exception as exc:  # still failing: try again after a longer pause
                    part.restart_at = now + part.pause
                    print(f"docuchat dev: could not start {name}: {exc}", file=out, flush=True)
                    part.pause = min(2 * part.pause, LONGEST_PAUSE_SECONDS)
                    continue
                part.started_at, part.restart_at = now, None
                print(f"docuchat dev: {name} started again", file=out, flush=True)

    def stop_all(self) -> None:
        for process in self.children.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for process in self.children.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # its own children too (a session each)
                process.wait()


def _wait_until_healthy(url: str, supervisor: Supervisor) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline and not supervisor.stopping:
        if supervisor.dead_child():
            return False
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url, timeout=2) as response,  # noqa: S310 - our own URL
        ):
            if response.status == 200:
                return True
        time.sleep(0.25)
    return False


def prepare_database(settings: Settings) -> None:
    """Migrate to head (as the owner), make the app's login, check the schema fits the
    configuration, make the default tenant."""
    engine = owner_engine(settings)
    try:
        upgrade(engine, settings.embedding_dimension)
        ensure_app_login(engine, settings.database_url or "")
        with engine.connect() as conn:
            check_schema(conn, settings.embedding_dimension)
        with unit_of_work(engine) as session:
            # Open, so a laptop's tour signs anyone in; real tenants are invite-only.
            ensure_tenant(session, DEFAULT_TENANT, "Demo", signup_policy="open")
    finally:
        engine.dispose()


def banner(options: DevOptions, settings: Settings, embedded: list[str], out: IO[str]) -> None:
    base = f"http://{options.host}:{options.port}"
    where = f"embedded {' + '.join(embedded)} in {options.data_dir}" if embedded else "external"
    print(
        f"""
DocuChat is running ({where}).
  API       {base}
  Health    {base}/healthz
  OpenAPI   {base}/schema
  Tenant    {DEFAULT_TENANT} (send it in the {settings.tenant_header} header)

Try it:
  curl {base}/healthz
  docuchat token {DEFAULT_TENANT} you@example.com --data-dir {options.data_dir}

Press Ctrl-C to stop everything.
""",
        file=out,
        flush=True,
    )


def run_dev(options: DevOptions, settings: Settings, out: IO[str] = sys.stdout) -> int:
    """Run the stack until Ctrl-C (exit 0) or until a child process dies (exit 1)."""
    with exclusive_data_dir(options.data_dir):
        postgres = redis = None
        supervisor = Supervisor()
        embedded = []
        try:
            if not settings.database_url:
                postgres = EmbeddedPostgres(options.data_dir)
                owner_url = postgres.start()
                settings = settings.model_copy(
                    update={"database_owner_url": owner_url, "database_url": postgres.app_url()}
                )
                embedded.append("Postgres")
            if not settings.redis_url:
                redis = EmbeddedRedis(options.data_dir)
                settings = settings.model_copy(update={"redis_url": redis.start()})
                redis.record_url()  # for admin commands run meanwhile (docuchat reindex)
                embedded.append("Redis")
            prepare_database(settings)
            record_api_url(options.data_dir, f"http://{options.host}:{options.port}")
            if postgres is not None:
                supervisor.parts["Postgres"] = _embedded_part(postgres.start, postgres.down)
            if redis is not None:
                supervisor.parts["Redis"] = _embedded_part(redis.start, redis.down)
            return _supervise(options, settings, supervisor, embedded, out)
        finally:
            forget_api_url(options.data_dir)
            supervisor.stop_all()
            if redis is not None:
                redis.forget_url()
                redis.stop()
            if postgres is not None:
                postgres.stop()


API_URL_FILE = "api-url"


def record_api_url(data_dir: Path, url: str) -> None:
    """Where a running `docuchat dev` serves its API, for admin commands run meanwhile
    (`docuchat ingest` finds it on any port)."""
    (data_dir / API_URL_FILE).write_text(url)


def forget_api_url(data_dir: Path) -> None:
    (data_dir / API_URL_FILE).unlink(missing_ok=True)


def recorded_api_url(data_dir: Path) -> str | None:
    """The API URL a running `docuchat dev` of this data folder recorded, if any."""
    try:
        return (data_dir / API_URL_FILE).read_text().strip() or None
    except OSError:
        return None


def child_environment(settings: Settings) -> dict[str, str]:
    """The API's and the workers' environment: this one, with the settings the dev stack
    decided (the data folder, its secret, the embedded servers' URLs). Never the owner's
    database URL: they sign in as the app."""
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_OWNER_URL"}
    env |= {
        "DATA_DIR": str(settings.data_dir),
        "JWT_SECRET": settings.jwt_secret.get_secret_value(),
        "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": settings.redis_url or "",
    }
    return env


def _embedded_part(start: Callable[[], object], down: Callable[[], str | None]) -> Part:
    """An embedded server, already started, kept running (on the same port or socket)."""

    def restart() -> None:
        start()

    return Part(restart, down, started_at=time.monotonic())


def _supervise(
    options: DevOptions,
    settings: Settings,
    supervisor: Supervisor,
    embedded: list[str],
    out: IO[str],
) -> int:
    def request_stop(signum: int, _frame: object) -> None:
        supervisor.stopping = True

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        env = child_environment(settings)
        supervisor.spawn(
            "api", api_command(options.host, options.port, settings.ws_max_frame_bytes), env
        )
        for name, command in fleet_commands(settings, WORKER_NICENESS).items():
            supervisor.spawn(name, command, env)
        health = f"http://{options.host}:{options.port}/healthz"
        if _wait_until_healthy(health, supervisor):
            banner(options, settings, embedded, out)
        while not supervisor.stopping:
            supervisor.heal(out)
            time.sleep(0.2)
        print("docuchat dev: stopping...", file=out, flush=True)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
