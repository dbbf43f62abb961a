"""What the API process holds open while it runs, made in the lifespan from settings."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from dramatiq import Broker
from litestar import Litestar
from litestar.connection import ASGIConnection
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from core.bootstrap import create_broker, redis_url
from core.errors import ConfigurationError
from core.mailer import Mailer, mailer_for
from core.rate_limits import RateLimiter
from core.settings import Settings
from core.signin_codes import SigninCodes
from db.engine import create_async_db_engine
from db.migrate import check_schema
from db.roles import check_app_login
from pipeline.embedding import Embedder, embedder_for

log = logging.getLogger("docuchat.api")


@dataclass
class ApiResources:
    settings: Settings
    engine: AsyncEngine
    redis: Redis
    # For blocking stream reads: its socket timeout outlasts the SSE keep-alive interval.
    stream_redis: Redis
    rate_limiter: RateLimiter
    signin_codes: SigninCodes
    mailer: Mailer
    broker: Broker
    embedder: Embedder
    trusted_proxies: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = field(
        default_factory=list
    )
    open_streams: int = 0  # answer streams this process is relaying now
    draining: bool = False  # SIGTERM arrived: open streams end with `reconnect`


def drain_streams_on_shutdown(resources: ApiResources) -> Callable[[], None]:
    """On SIGTERM or SIGINT, end every open answer stream with a `reconnect` event (its
    clients resume elsewhere with Last-Event-ID), then let uvicorn's own handler shut down as
    usual: it waits for open requests, and streams would otherwise keep it waiting for their
    answers to finish. Returns what undoes it. Only the main thread may set signal handlers;
    elsewhere (an embedded server) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.getsignal(sig) for sig in signals}
    pending: set[asyncio.Task[None]] = set()

    def drain() -> None:
        resources.draining = True
        # Every relay is blocked in XREAD on this pool: closing its connections wakes them all.
        task = loop.create_task(resources.stream_redis.connection_pool.disconnect())
        pending.add(task)
        task.add_done_callback(pending.discard)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(drain)
        handler = previous[signal.Signals(signum)]
        if callable(handler):
            handler(signum, frame)

    for sig in signals:
        signal.signal(sig, on_signal)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


def resources_of(connection: ASGIConnection[Any, Any, Any, Any]) -> ApiResources:
    """The resources the lifespan stored on the app, for a request or any connection."""
    resources: ApiResources = connection.app.state.resources
    return resources


def lifespan_for(settings: Settings):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        engine = create_async_db_engine(settings)
        # Blocking reads (SSE relays) set their own timeouts; every other call gets 5 s.
        redis = Redis.from_url(
            redis_url(settings), socket_timeout=5, socket_connect_timeout=5, decode_responses=False
        )
        # redis-py's default 5 s socket timeout would cut every blocking XREAD short.
        stream_redis = Redis.from_url(
            redis_url(settings),
            socket_timeout=settings.sse_keepalive_seconds + 10,
            socket_connect_timeout=5,
            # The stream route refuses past the limit; the margin covers requests in between.
            max_connections=settings.max_streams_per_process + 50,
            decode_responses=False,
        )
        try:
            async with engine.connect() as conn:
                await conn.run_sync(check_app_login)
                await conn.run_sync(check_schema, settings.embedding_dimension)
        except ConfigurationError as exc:
            log.error("refusing to start: %s", exc)
            await engine.dispose()
            await redis.aclose()
            await stream_redis.aclose()
            raise
        app.state.resources = ApiResources(
            settings=settings,
            engine=engine,
            redis=redis,
            stream_redis=stream_redis,
            rate_limiter=RateLimiter(redis_url(settings)),
            signin_codes=SigninCodes(
                redis=redis,
                secret=settings.jwt_secret.get_secret_value().encode(),
                ttl_seconds=settings.login_code_ttl_seconds,
                max_attempts=settings.login_code_max_attempts,
            ),
            mailer=mailer_for(settings),
            # Enqueues by actor name only: the API never imports the workers' code.
            broker=create_broker(settings),
            embedder=embedder_for(settings),
            trusted_proxies=[
                ipaddress.ip_network(entry, strict=False) for entry in settings.trusted_proxies
            ],
        )
        restore_signals = drain_streams_on_shutdown(app.state.resources)
        try:
            yield
        finally:
            restore_signals()
            app.state.resources.broker.close()
            await redis.aclose()
            await stream_redis.aclose()
            await engine.dispose()

    return lifespan
