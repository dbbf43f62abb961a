"""What the API process holds open while it runs, made in the lifespan from settings."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
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
        try:
            yield
        finally:
            app.state.resources.broker.close()
            await redis.aclose()
            await stream_redis.aclose()
            await engine.dispose()

    return lifespan
