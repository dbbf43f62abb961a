"""What the API process holds open while it runs, made in the lifespan from settings."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from litestar import Litestar
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from core.bootstrap import redis_url
from core.errors import ConfigurationError
from core.settings import Settings
from db.engine import create_async_db_engine
from db.migrate import check_schema

log = logging.getLogger("docuchat.api")


@dataclass
class ApiResources:
    settings: Settings
    engine: AsyncEngine
    redis: Redis


def lifespan_for(settings: Settings):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        engine = create_async_db_engine(settings)
        # Blocking reads (SSE relays) set their own timeouts; every other call gets 5 s.
        redis = Redis.from_url(
            redis_url(settings), socket_timeout=5, socket_connect_timeout=5, decode_responses=False
        )
        try:
            async with engine.connect() as conn:
                await conn.run_sync(check_schema, settings.embedding_dimension)
        except ConfigurationError as exc:
            log.error("refusing to start: %s", exc)
            await engine.dispose()
            await redis.aclose()
            raise
        app.state.resources = ApiResources(settings=settings, engine=engine, redis=redis)
        try:
            yield
        finally:
            await redis.aclose()
            await engine.dispose()

    return lifespan
