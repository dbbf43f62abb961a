"""The one place that builds the service's parts from settings: database engines, Redis
clients, the broker, the embedding and chat providers, the mailer, the rate limiter and the
sign-in codes.

It sits above every layer whose parts it builds and below the entry points, which all call
`bootstrap(settings)`: the API's lifespan, each worker process's `workers.broker:setup`, the
CLI, the tests and the benchmarks. Nothing is built at import, and each part is built on
first use, so a command that needs only the database never asks for Redis. Nothing here
connects: engines and clients connect when first used. Tests may hand in stand-ins for the
paid providers, and nothing else.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

from dramatiq import Broker
from limits.aio.storage import RedisStorage
from redis import Redis
from redis.asyncio import BlockingConnectionPool
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.retry import Retry as AsyncRetry
from sqlalchemy import Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from core.settings import EXTRACTIVE_MODEL, Settings
from db.engine import app_connect_args, sqlalchemy_url
from pipeline.embedding import Embedder, LocalE5Embedder, OpenAIEmbedder
from pipeline.extractive import ExtractiveProvider
from pipeline.generation import ChatProvider, OpenAIChatProvider
from transport.mail import ConsoleMailer, SmtpMailer
from transport.queue import create_broker, redis_timeouts, redis_url
from transport.rate_limits import RateLimiter, limits_uri
from transport.signin_codes import SigninCodes
from usecases.ports import Mailer

# Connections of the API's Redis pool for its short calls (streams share one listener).
REDIS_POOL_SIZE = 32

T = TypeVar("T")
_UNBUILT = object()
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class _BuiltOnce(Generic[T]):
    """A part of Services, built the first time it is read, once, whatever the thread."""

    def __init__(self, build: Callable[[Services], T]) -> None:
        self._build = build
        self.__doc__ = build.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, services: None, owner: type) -> _BuiltOnce[T]: ...
    @overload
    def __get__(self, services: Services, owner: type) -> T: ...
    def __get__(self, services: Services | None, owner: type) -> T | _BuiltOnce[T]:
        if services is None:
            return self
        with services._lock:
            value = services.__dict__.get(self._name, _UNBUILT)
            if value is _UNBUILT:
                value = services.__dict__[self._name] = self._build(services)
        return value


class Services:
    """The service's parts, each built on first use from one settings object."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.RLock()

    def given(self, **parts: Any) -> Services:
        """Use these instead of building them (a stand-in for a paid provider in a test)."""
        for name, part in parts.items():
            if not isinstance(getattr(type(self), name, None), _BuiltOnce):
                raise AttributeError(f"Services has no part {name!r}")
            if part is not None:
                self.__dict__[name] = part
        return self

    @_BuiltOnce
    def engine(self) -> Engine:
        """Synchronous, as the app's own login, bound by row-level security (workers)."""
        return create_engine(
            sqlalchemy_url(self.settings),
            pool_pre_ping=True,
            pool_size=8,
            connect_args=app_connect_args(self.settings),
        )

    @_BuiltOnce
    def async_engine(self) -> AsyncEngine:
        """Asynchronous, as the app's own login (the API)."""
        return create_async_engine(
            sqlalchemy_url(self.settings),
            pool_pre_ping=True,
            pool_size=10,
            pool_timeout=self.settings.request_deadline_seconds,
            connect_args=app_connect_args(self.settings, self.settings.request_deadline_seconds),
        )

    @_BuiltOnce
    def redis(self) -> Redis:
        """Synchronous Redis with REDIS_TIMEOUT_SECONDS timeouts (workers)."""
        return Redis.from_url(redis_url(self.settings), **redis_timeouts(self.settings))

    @_BuiltOnce
    def async_redis(self) -> AsyncRedis:
        """Asynchronous Redis with REDIS_TIMEOUT_SECONDS timeouts (the API), on at most
        REDIS_POOL_SIZE connections: a burst of a thousand readers opening their streams waits
        its turn for a connection instead of opening a thousand."""
        pool = BlockingConnectionPool.from_url(
            redis_url(self.settings),
            max_connections=REDIS_POOL_SIZE,
            timeout=5,
            **redis_timeouts(self.settings, AsyncRetry),
        )
        return AsyncRedis(connection_pool=pool)

    @_BuiltOnce
    def stream_redis(self) -> AsyncRedis:
        """Makes the stream hub's one pub/sub connection (transport/hub.py), which waits
        for messages as long as it takes: the hub pings it to know it is alive."""
        return AsyncRedis.from_url(
            redis_url(self.settings),
            max_connections=1,
            **redis_timeouts(self.settings, AsyncRetry),
        )

    @_BuiltOnce
    def broker(self) -> Broker:
        return create_broker(self.settings)

    @_BuiltOnce
    def embedder(self) -> Embedder:
        """The provider EMBEDDING_PROVIDER names; the local one loads its weights on first use."""
        settings = self.settings
        if settings.embedding_provider == "local":
            return LocalE5Embedder(settings.embedding_model_name)
        key = settings.openai_api_key
        return OpenAIEmbedder(
            settings.embedding_model_name,
            settings.embedding_dimension,
            api_key=key.get_secret_value() if key else None,
            base_url=settings.openai_base_url,
            timeout=settings.openai_timeout_seconds,
            max_retries=settings.openai_max_retries,
            request_dimensions=settings.embedding_dimensions is not None
            and settings.embedding_model_name.startswith("text-embedding-3"),
        )

    @_BuiltOnce
    def chat_provider(self) -> ChatProvider:
        """A language model, or the extractive answerer when none is configured."""
        settings = self.settings
        if settings.chat_provider_name == "extractive":
            return self.extractive
        key = settings.openai_api_key
        return OpenAIChatProvider(
            api_key=key.get_secret_value() if key else None,
            base_url=settings.openai_base_url,
            timeout=settings.openai_timeout_seconds,
            max_retries=settings.openai_max_retries,
            max_tokens=settings.max_answer_tokens,
        )

    @_BuiltOnce
    def extractive(self) -> ChatProvider:
        """Answers when there is nothing to send a model: no sources, no tokens to spend."""
        return ExtractiveProvider(EXTRACTIVE_MODEL, self.embedder)

    @_BuiltOnce
    def mailer(self) -> Mailer:
        """SMTP, or the console when no SMTP_HOST is set (development only)."""
        return SmtpMailer(self.settings) if self.settings.smtp_host else ConsoleMailer()

    @_BuiltOnce
    def rate_limiter(self) -> RateLimiter:
        """Moving windows kept atomically in Redis, shared by every API process."""
        storage = RedisStorage(
            limits_uri(redis_url(self.settings)),
            implementation="redispy",
            key_prefix="docuchat:limits",
        )
        return RateLimiter(storage, self.settings.rate_limit_window_seconds)

    @_BuiltOnce
    def signin_codes(self) -> SigninCodes:
        settings = self.settings
        return SigninCodes(
            redis=self.async_redis,
            secret=settings.jwt_secret.get_secret_value().encode(),
            ttl_seconds=settings.login_code_ttl_seconds,
            max_attempts=settings.login_code_max_attempts,
        )

    @_BuiltOnce
    def trusted_proxies(self) -> list[Network]:
        return [
            ipaddress.ip_network(entry, strict=False) for entry in self.settings.trusted_proxies
        ]

    def close(self) -> None:
        """Let go of what was built synchronously: pools and connections."""
        built = self.__dict__
        if "broker" in built:
            built["broker"].close()
        if "redis" in built:
            built["redis"].close()
        if "engine" in built:
            built["engine"].dispose()

    async def aclose(self) -> None:
        """Let go of everything built, the asynchronous parts included (from an event loop)."""
        built = self.__dict__
        for name in ("async_redis", "stream_redis"):
            if name in built:
                await built[name].aclose()
        if "async_engine" in built:
            await built["async_engine"].dispose()
        self.close()


def bootstrap(settings: Settings, **given: Any) -> Services:
    """The service's parts for these settings; `given` hands in ready-made ones (a stand-in
    for a paid provider)."""
    return Services(settings).given(**given)


def owner_engine(settings: Settings, pool_size: int = 1) -> Engine:
    """The schema owner's engine (DATABASE_OWNER_URL): migrations and operators' commands.
    The API and the workers never build one."""
    return create_engine(
        sqlalchemy_url(settings, owner=True), pool_pre_ping=True, pool_size=pool_size
    )
