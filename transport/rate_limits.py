"""Rate limits shared by every API process: moving windows kept atomically in Redis (`limits`)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_after: int  # seconds until a slot frees up


class RateLimiter:
    """Moving windows in `storage` (Redis, built by bootstrap.py); the request budgets
    count over `window_seconds` (RATE_LIMIT_WINDOW_SECONDS, a minute)."""

    def __init__(self, storage: Storage, window_seconds: int = 60) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        self.window_seconds = window_seconds

    def budget(self, amount: int) -> RateLimitItem:
        """`amount` requests per window."""
        return RateLimitItemPerSecond(amount, self.window_seconds)

    async def hit(self, item: RateLimitItem, *identifiers: str) -> Decision:
        allowed = await self._limiter.hit(item, *identifiers)
        stats = await self._limiter.get_window_stats(item, *identifiers)
        reset_after = max(1, math.ceil(stats.reset_time - time.time()))
        return Decision(allowed, item.amount, stats.remaining, reset_after)


def limits_uri(redis_url: str) -> str:
    """A Redis URL as the `limits` package spells it for its asyncio storage."""
    scheme, rest = redis_url.split("://", 1)
    return f"async+{'redis+unix' if scheme == 'unix' else scheme}://{rest}"
