"""What a worker process holds: an engine bound by row-level security and the embedder.

Made on first use inside the worker process (after Dramatiq forked it), never at import, and
shared by the process's threads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy import Engine

from core.settings import Settings
from db.engine import create_sync_engine
from pipeline.embedding import Embedder, embedder_for


@dataclass(frozen=True)
class WorkerResources:
    settings: Settings
    engine: Engine
    embedder: Embedder


_lock = threading.Lock()
_resources: WorkerResources | None = None


def worker_resources(settings: Settings) -> WorkerResources:
    global _resources
    with _lock:
        if _resources is None:
            _resources = WorkerResources(
                settings=settings,
                engine=create_sync_engine(settings, pool_size=8),
                embedder=embedder_for(settings),
            )
        return _resources
