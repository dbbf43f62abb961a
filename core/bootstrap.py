"""The one place that builds the service's resources from settings; nothing is built at import."""

from __future__ import annotations

from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from core.errors import ConfigurationError
from core.settings import Settings

# Every queue the fleet serves: slow ingestion never delays chat answers.
QUEUES = ("ingest", "chat")
BROKER_NAMESPACE = "docuchat"


def redis_url(settings: Settings) -> str:
    if not settings.redis_url:
        raise ConfigurationError(
            "REDIS_URL is not set: point it at a Redis server, or run `docuchat dev` for the "
            "embedded stack"
        )
    return settings.redis_url


def create_broker(settings: Settings) -> RedisBroker:
    """The Redis broker with its middleware spelled out, every queue declared."""
    broker = RedisBroker(
        url=redis_url(settings),
        namespace=BROKER_NAMESPACE,
        middleware=[
            AgeLimit(),
            TimeLimit(),
            ShutdownNotifications(),
            Callbacks(),
            Pipelines(),
            Retries(),
            CurrentMessage(),
        ],
    )
    for queue in QUEUES:
        broker.declare_queue(queue)
    return broker
