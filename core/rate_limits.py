"""Rate limits shared by every API process: moving windows kept atomically in Redis (`limits`)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_after: int  # seconds until a slot frees up


class RateLimiter:
    def __init__(self, redis_url: str) -> None:
        storage = RedisStorage(
            _limits_uri(redis_url), implementation="redispy", key_prefix="docuchat:limits"
        )
        self._limiter = MovingWindowRateLimiter(storage)

    async def hit(self, item: RateLimitItem, *identifiers: str) -> Decision:
        allowed = await self._limiter.hit(item, *identifiers)
        stats = await self._limiter.get_window_stats(item, *identifiers)
        reset_after = max(1, math.ceil(stats.reset_time - time.time()))
        return Decision(allowed, item.amount, stats.remaining, reset_after)


def _limits_uri(redis_url: str) -> str:
    scheme, rest = redis_url.split("://", 1)
    return f"async+{'redis+unix' if scheme == 'unix' else scheme}://{rest}"
