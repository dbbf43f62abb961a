"""The queue: Dramatiq on Redis (the broker with its middleware), the queues and actor names,
enqueuing, and the Redis keys and timeouts the API, the workers and the sweep share."""

from __future__ import annotations

from typing import Any

from dramatiq import Broker, Message
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    CurrentMessage,
    Pipelines,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)
from redis.backoff import NoBackoff
from redis.retry import Retry

from core.errors import ConfigurationError
from core.settings import Settings
from transport.waking_broker import WakingRedisBroker

# Every queue the fleet serves: slow ingestion never delays chat answers.
QUEUES = ("ingest", "chat")
BROKER_NAMESPACE = "docuchat"
# Actor names the API enqueues by name, so it never imports the workers' code.
# An ingest message names no document: it is a turn, in which a worker claims the fairest
# batch of pages of any tenant (usecases/ingestion.py). A chat message names its job.
INGEST_ACTOR = "ingest_turn"
CHAT_ACTOR = "answer_question"
# How long one message may run before Dramatiq stops it, by queue (an ingest message is one
# batch of pages).
TIME_LIMIT_MS = {"ingest": 15 * 60 * 1000, "chat": 10 * 60 * 1000}
HEARTBEATS_KEY = f"{BROKER_NAMESPACE}:__heartbeats__"

# How many broker commands in a million run queue maintenance, which hands the messages of a
# dead worker to the living. Dramatiq's default suits its 60 s heartbeat timeout; a shorter
# timeout means someone wants dead workers noticed quickly, so maintenance runs more often.
_MAINTENANCE_CHANCE_DEFAULT = 1_000
_MAINTENANCE_CHANCE_FAST = 250_000


def redis_url(settings: Settings) -> str:
    if not settings.redis_url:
        raise ConfigurationError(
            "REDIS_URL is not set: point it at a Redis server, or run `docuchat dev` for the "
            "embedded stack"
        )
    return settings.redis_url


def redis_timeouts(settings: Settings, retry: type[Any] = Retry) -> dict[str, Any]:
    """A Redis client's timeouts: REDIS_TIMEOUT_SECONDS to connect and for each reply, and one
    more try (redis-py's default is ten, which held a request for a minute on a frozen Redis).
    `retry` is redis-py's Retry class of the client's kind (synchronous or asyncio)."""
    seconds = settings.redis_timeout_seconds
    return {
        "socket_timeout": seconds,
        "socket_connect_timeout": seconds,
        "retry": retry(NoBackoff(), 1),
    }


def create_broker(settings: Settings) -> WakingRedisBroker:
    """The Redis broker with its middleware spelled out, every queue declared; idle workers
    wake as soon as a message is sent."""
    heartbeat_ms = int(settings.worker_heartbeat_timeout_seconds * 1000)
    broker = WakingRedisBroker(
        url=redis_url(settings),
        namespace=BROKER_NAMESPACE,
        heartbeat_timeout=heartbeat_ms,
        maintenance_chance=(
            _MAINTENANCE_CHANCE_DEFAULT if heartbeat_ms >= 60_000 else _MAINTENANCE_CHANCE_FAST
        ),
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
    # Dramatiq's client connects lazily: its connections are made with these timeouts.
    broker.client.connection_pool.connection_kwargs.update(redis_timeouts(settings))
    for queue in QUEUES:
        broker.declare_queue(queue)
    return broker


def enqueue(broker: Broker, queue: str, actor: str, job_id: str, *args: str) -> str:
    """Send job `job_id` to `actor` on `queue` by name. The message's id is the job's (Dramatiq
    keys its Redis copies by ids of their own), so the reaper can tell which jobs still have a
    message."""
    message: Message[Any] = Message(
        queue_name=queue,
        actor_name=actor,
        args=(job_id, *args),
        kwargs={},
        options={},
        message_id=job_id,
    )
    return broker.enqueue(message).message_id


def wake_ingestion(broker: Broker, turns: int = 1, delay_ms: int | None = None) -> None:
    """Send `turns` ingest turns (after `delay_ms`): each lets one worker claim one batch."""
    for _ in range(turns):
        message: Message[Any] = Message(
            queue_name="ingest", actor_name=INGEST_ACTOR, args=(), kwargs={}, options={}
        )
        broker.enqueue(message, delay=delay_ms)


def queue_key(queue: str) -> str:
    """The Redis list of a queue's waiting message ids: its length is the queue's depth."""
    return f"{BROKER_NAMESPACE}:{queue}"


def message_keys(queue: str) -> tuple[str, str]:
    """The Redis hashes that hold a queue's messages from enqueue to ack: ready or being
    worked on, and delayed (waiting for a retry)."""
    return f"{queue_key(queue)}.msgs", f"{queue_key(queue)}.DQ.msgs"
