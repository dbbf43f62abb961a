"""What use cases need from the running service, as protocols: the API's resources satisfy
`ApiParts`, a worker process's Services satisfy `WorkerParts`, and a use case asks for no
more than these. `Who` is whoever asks: an API caller."""

from __future__ import annotations

import uuid
from typing import Protocol

from dramatiq import Broker
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from core.settings import Settings
from pipeline.embedding import Embedder
from pipeline.generation import ChatProvider


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
