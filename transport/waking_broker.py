"""A Redis broker whose idle workers wake the moment a message arrives, instead of polling.

Dramatiq's Redis consumer sleeps between empty fetches, backing off up to a second, so a
chat question sent to an idle fleet waited for the next poll. Here every enqueue also pushes
a token onto the queue's wake-up list, and an idle consumer waits on that list with BLPOP
(for at most the same second), so it fetches within milliseconds. A lost or extra token only
costs one poll: the queue itself stays the single source of truth.
"""

from __future__ import annotations

from typing import Any

import redis
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import dq_name
from dramatiq.errors import ConnectionClosed

# Tokens kept per queue: enough to wake every idle consumer of a burst, bounded regardless.
MAX_WAKE_TOKENS = 64


class WakingRedisBroker(RedisBroker):
    def wake_key(self, queue_name: str) -> str:
        return f"{self.namespace}:{queue_name}.wake"

    @property
    def consumer_class(self) -> type[_RedisConsumer]:
        return _WakingConsumer

    def enqueue(self, message: Message[Any], *, delay: int | None = None) -> Message[Any]:
        sent = super().enqueue(message, delay=delay)
        if delay is None:
            key = self.wake_key(message.queue_name)
            pipe = self.client.pipeline(transaction=False)
            pipe.lpush(key, 1)
            pipe.ltrim(key, 0, MAX_WAKE_TOKENS - 1)
            pipe.execute()
        return sent


class _WakingConsumer(_RedisConsumer):
    @property
    def _wait(self) -> float:
        """Seconds to wait for a token: the consumer's timeout, and well inside the client's
        own, or every quiet wait would end as a timeout error."""
        reply_timeout = self.broker.client.connection_pool.connection_kwargs.get("socket_timeout")
        return min(self.timeout / 1000, (reply_timeout or float("inf")) / 2)

    def __next__(self) -> Any:
        idle = not self.message_cache and self.outstanding_message_count < self.prefetch
        if not idle or self.queue_name == dq_name(self.queue_name):
            return super().__next__()
        try:
            self.message_cache = self.broker.do_fetch(
                self.queue_name, self.prefetch - self.outstanding_message_count
            )
            if not self.message_cache:
                self.broker.client.blpop(
                    [self.broker.wake_key(self.queue_name)], timeout=self._wait
                )
                return None
        except redis.ConnectionError as exc:
            raise ConnectionClosed(exc) from None
        return super().__next__()
