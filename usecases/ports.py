"""What use cases need from the running service, as protocols: the API's resources satisfy
`ApiParts` and `SigninParts`, a worker process's Services satisfy `WorkerParts`, and a use
case asks for no more than these. `Who` is whoever asks: an API caller. The mailer, the code
store and the rate limiter are adapters (transport/) behind the small protocols below."""

from __future__ import annotations

import uuid
from typing import Protocol

from dramatiq import Broker
from limits import RateLimitItem
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from pipeline.embedding import Embedder
from pipeline.generation import ChatProvider
from transport.mail import Mail
from transport.rate_limits import Decision


class Who(Protocol):
    @property
    def tenant_id(self) -> uuid.UUID: ...
    @property
    def tenant_slug(self) -> str: ...
    @property
    def user_id(self) -> uuid.UUID: ...
    @property
    def is_admin(self) -> bool: ...


class ApiParts(Protocol):
    """An API process's parts (asynchronous)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def engine(self) -> AsyncEngine: ...
    @property
    def redis(self) -> AsyncRedis: ...
    @property
    def broker(self) -> Broker: ...
    @property
    def embedder(self) -> Embedder: ...


class WorkerParts(Protocol):
    """A worker process's parts (synchronous)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def engine(self) -> Engine: ...
    @property
    def redis(self) -> Redis: ...
    @property
    def broker(self) -> Broker: ...
    @property
    def embedder(self) -> Embedder: ...
    @property
    def chat_provider(self) -> ChatProvider: ...
    @property
    def extractive(self) -> ChatProvider: ...


class Mailer(Protocol):
    async def send(self, mail: Mail) -> None:
        """Deliver `mail`; raise on failure."""


class CodeStore(Protocol):
    """Single-use sign-in codes, one live code per tenant and address."""

    async def issue(self, tenant_id: uuid.UUID, email: str) -> str:
        """A fresh code for this address; any earlier one stops working."""

    async def redeem(self, tenant_id: uuid.UUID, email: str, code: str) -> None:
        """Consume the code or raise SignInRejected saying why."""


class RateLimits(Protocol):
    async def hit(self, item: RateLimitItem, *identifiers: str) -> Decision:
        """Spend one of `item`'s allowance for these identifiers, allowed or not."""


class SigninParts(Protocol):
    """What signing in needs (the API's resources)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def engine(self) -> AsyncEngine: ...
    @property
    def rate_limiter(self) -> RateLimits: ...
    @property
    def signin_codes(self) -> CodeStore: ...
