"""What the API process holds while it runs: its Services, built in the lifespan."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any, TypeAlias

from dramatiq import Broker
from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import NamedDependency
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from api.capacity import Capacity, Pool, stream_pool, upload_pool
from bootstrap import Services, bootstrap
from core.errors import ConfigurationError
from core.settings import Settings
from db.engine import libpq_url
from db.job_watch import JobWatch
from db.migrate import check_schema
from db.roles import check_app_login
from pipeline.embedding import Embedder
from transport.hub import REPAIR_SECONDS, StreamHub
from transport.rate_limits import RateLimiter
from usecases.documents import ocr_off
from usecases.ports import CodeStore, Mailer

log = logging.getLogger("docuchat.api")


@dataclass
class ApiResources:
    """The process's Services (bootstrap.py), as the API uses them, and the relay's own
    state."""

    services: Services
    hub: StreamHub  # the one listener for every answer stream this process relays
    job_watch: JobWatch  # the one listener for job changes
    capacity: Capacity  # open streams and uploads, per user, tenant and process
    streams: Pool  # answer streams, job events and sockets: one budget
    uploads: Pool
    draining: bool = False  # SIGTERM arrived: open streams end with `reconnect`

    @property
    def open_streams(self) -> int:
        """Event streams (answers, jobs, sockets) this process serves now."""
        return self.capacity.open(self.streams)

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def engine(self) -> AsyncEngine:
        return self.services.async_engine

    @property
    def redis(self) -> Redis:
        """Every call gets 5 s; blocking reads use `stream_redis`."""
        return self.services.async_redis

    @property
    def broker(self) -> Broker:
        """Enqueues by actor name only: the API never imports the workers' code."""
        return self.services.broker

    @property
    def embedder(self) -> Embedder:
        return self.services.embedder

    @property
    def mailer(self) -> Mailer:
        return self.services.mailer

    @property
    def rate_limiter(self) -> RateLimiter:
        return self.services.rate_limiter

    @property
    def signin_codes(self) -> CodeStore:
        return self.services.signin_codes

    @property
    def trusted_proxies(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return self.services.trusted_proxies


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
        # Every relay waits on the hub or the job watch: closing the hub wakes them all.
        task = loop.create_task(resources.hub.close("this server is shutting down"))
        pending.add(task)
        task.add_done_callback(pending.discard)
        resources.job_watch.wake_all()

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


# How a handler asks for them: `resources: ResourcesDep` (provided in app.py).
ResourcesDep: TypeAlias = NamedDependency[ApiResources]


def provide_resources(state: State) -> ApiResources:
    """The `resources` dependency of every route: what the lifespan stored on the app."""
    resources: ApiResources = state.resources
    return resources


def lifespan_for(settings: Settings, **given: Any):  # type: ignore[no-untyped-def]
    """The app's lifespan: the Services built, the database checked (the app's login, the
    schema), and everything let go at the end. `given`: stand-ins for paid providers."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        services = bootstrap(settings, **given)
        try:
            async with services.async_engine.connect() as conn:
                await conn.run_sync(check_app_login)
                await conn.run_sync(check_schema, settings.embedding_dimension)
        except ConfigurationError as exc:
            log.error("refusing to start: %s", exc)
            await services.aclose()
            raise
        if off := ocr_off(settings):
            log.warning(off)
        repair = min(REPAIR_SECONDS, settings.sse_keepalive_seconds)
        hub = StreamHub(services.stream_redis, services.async_redis, repair_seconds=repair)
        job_watch = JobWatch(libpq_url(settings))
        streams, uploads = stream_pool(settings), upload_pool(settings)
        capacity = Capacity(services.async_redis, streams, uploads)
        hub.start()
        job_watch.start()
        capacity.start()
        app.state.resources = ApiResources(services, hub, job_watch, capacity, streams, uploads)
        restore_signals = drain_streams_on_shutdown(app.state.resources)
        try:
            yield
        finally:
            restore_signals()
            await hub.close("this server is shutting down")
            await job_watch.close()
            await capacity.close()
            await services.aclose()

    return lifespan
