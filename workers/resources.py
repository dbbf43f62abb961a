"""What a worker process holds: an engine bound by row-level security, Redis, the embedder
and the chat providers.

Made on first use inside the worker process (after Dramatiq forked it), never at import, and
shared by the process's threads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from redis import Redis
from sqlalchemy import Engine

from core.bootstrap import redis_url
from core.settings import Settings
from db.engine import create_sync_engine
from db.roles import check_app_login
from pipeline.embedding import Embedder, embedder_for
from pipeline.extractive import ExtractiveProvider
from pipeline.generation import ChatProvider, OpenAIChatProvider


@dataclass(frozen=True)
class WorkerResources:
    settings: Settings
    engine: Engine
    redis: Redis
    embedder: Embedder
    chat_provider: ChatProvider
    # Answers when there is nothing to send a model: no sources, no tokens to spend.
    extractive: ChatProvider


def chat_provider_for(settings: Settings) -> ChatProvider:
    """The provider the settings name: a language model, or the extractive answerer."""
    if settings.chat_provider_name == "extractive":
        return ExtractiveProvider()
    key = settings.openai_api_key
    return OpenAIChatProvider(
        api_key=key.get_secret_value() if key else None,
        base_url=settings.openai_base_url,
        timeout=settings.openai_timeout_seconds,
        max_retries=settings.openai_max_retries,
        max_tokens=settings.max_answer_tokens,
    )


_lock = threading.Lock()
_resources: WorkerResources | None = None


def worker_resources(settings: Settings) -> WorkerResources:
    global _resources
    with _lock:
        if _resources is None:
            engine = create_sync_engine(settings, pool_size=8)
            with engine.connect() as conn:
                check_app_login(conn)  # refuse to work as a role RLS does not bind
            _resources = WorkerResources(
                settings=settings,
                engine=engine,
                redis=Redis.from_url(
                    redis_url(settings), socket_timeout=5, socket_connect_timeout=5
                ),
                embedder=embedder_for(settings),
                chat_provider=chat_provider_for(settings),
                extractive=ExtractiveProvider(),
            )
        return _resources
