"""Entry of the worker fleet: `dramatiq workers.broker:setup workers.actors`.

The dramatiq CLI calls `setup` in each worker process before it imports the actors, so the
broker and its middleware are in place before any actor is declared, and nothing is read or
built at import. The broker comes from the process's Services (bootstrap.py); their other
parts (engines, Redis, providers) are built on first use, once the process has booted.
"""

from __future__ import annotations

from typing import Any

import dramatiq
from dramatiq import Broker

from bootstrap import bootstrap
from core.logs import configure_logging
from core.redaction import install_log_redaction
from core.settings import load_settings
from workers.heartbeat import Heartbeat
from workers.log_context import JobLogContext
from workers.reaper import JobReaper
from workers.services import ServicesMiddleware


class OneMessagePerThread(dramatiq.Middleware):
    """A worker fetches no more messages than it has threads (Dramatiq's default is twice as
    many). An ingest turn can run for minutes: one waiting in a busy process's memory is a
    batch that a free worker on another machine cannot start."""

    def before_worker_boot(self, broker: Broker, worker: Any) -> None:
        worker.queue_prefetch = worker.worker_threads


def setup() -> None:
    install_log_redaction()
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    services = bootstrap(settings)
    broker = services.broker
    broker.add_middleware(ServicesMiddleware(services))
    broker.add_middleware(Heartbeat(settings.worker_heartbeat_timeout_seconds))
    broker.add_middleware(JobReaper(settings))
    broker.add_middleware(JobLogContext())
    broker.add_middleware(OneMessagePerThread())
    dramatiq.set_broker(broker)
