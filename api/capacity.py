"""How much one user, one tenant and this process may hold open at once: the API's shared
capacity, so that no caller can spend what other tenants need.

Two pools, each bounded per user, per tenant and per process:
- `streams`: every long-lived stream (answer SSE, job events, WebSocket) counts once;
- `uploads`: request bodies being received (each holds a connection and a temporary file).

The per-process count is this process's own. Per user and per tenant the counts span every
API process: each hold is a lease in Redis (a sorted set per user and per tenant, scored by
the lease's expiry), taken by one script that also refuses it past the limit, renewed by one
task per process while held, and removed when let go; a process that dies frees its share
within LEASE_SECONDS. Each process also counts its own holds per user and per tenant and
enforces the limits on them first, so the limits hold within a process when Redis does not
answer, and concurrent requests cannot race past them while the script runs; renewal writes
every lease again, so a Redis that restarted empty learns them back within a renewal.

A user or tenant past its limit gets 429 naming the limit and its setting; a full process
503 with Retry-After, since another process behind the same address may have room.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import weakref
from collections import Counter
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.errors import RateLimited, ServiceUnavailable
from core.settings import Settings

log = logging.getLogger("docuchat.api")

LEASE_SECONDS = 60.0  # a dead process's holds are forgotten this long after its last renewal
RENEW_EVERY_SECONDS = LEASE_SECONDS / 4
RETRY_AFTER_SECONDS = 5

# KEYS: the user's and the tenant's sets. ARGV: now, the lease's expiry, the hold's name, the
# user's limit, the tenant's limit, the sets' time to live. Returns 0, or which limit refused.
_TAKE = """
for _, key in ipairs(KEYS) do redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1]) end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 1 end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then return 2 end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, ARGV[2], ARGV[3])
  redis.call('EXPIRE', key, ARGV[6])
end
return 0
"""


@dataclass(frozen=True)
class Pool:
    """One kind of thing held open, and its limits with the settings that set them."""

    name: str
    what: str  # as a 429's sentence names it
    per_user: tuple[int, str]
    per_tenant: tuple[int, str]
    per_process: tuple[int, str]


def _refusal(pool: Pool, refused: int) -> RateLimited:
    """The 429 of a user's (1) or a tenant's (2) limit."""
    limit, setting = pool.per_user if refused == 1 else pool.per_tenant
    whose = "you have" if refused == 1 else "your tenant has"
    return RateLimited(
        f"too many {pool.what}: {whose} {limit} open, the most allowed ({setting}); close one "
        "and retry",
        RETRY_AFTER_SECONDS,
    )


def stream_pool(settings: Settings) -> Pool:
    return Pool(
        "streams",
        "open streams (answers, job events and WebSockets together)",
        (settings.max_streams_per_user, "MAX_STREAMS_PER_USER"),
        (settings.max_streams_per_tenant, "MAX_STREAMS_PER_TENANT"),
        (settings.max_streams_per_process, "MAX_STREAMS_PER_PROCESS"),
    )


def upload_pool(settings: Settings) -> Pool:
    return Pool(
        "uploads",
        "uploads being received at once",
        (settings.max_uploads_per_user, "MAX_UPLOADS_PER_USER"),
        (settings.max_uploads_per_tenant, "MAX_UPLOADS_PER_TENANT"),
        (settings.max_uploads_per_process, "MAX_UPLOADS_PER_PROCESS"),
    )


@dataclass(eq=False)
class Hold:
    """One thing held open; `release` (or leaving its `async with`) lets it go, once."""

    capacity: Capacity
    pool: Pool
    keys: tuple[str, str]
    member: str
    leased: bool = False  # counted in Redis too (not while Redis does not answer)
    released: bool = field(default=False)

    async def release(self) -> None:
        if self._drop():
            # Shielded: a stream ends by being cancelled (its client left), and within a
            # cancelled scope every await would be cancelled again before Redis heard of it.
            await asyncio.shield(self.capacity._forget(self))

    def _drop(self) -> bool:
        """Let go here; True the first time. The Redis lease goes with `release`, or at the
        next renewal when a hold is only dropped (its owner was never run to its end)."""
        if self.released:
            return False
        self.released = True
        self.capacity._held[self.pool.name].pop(self.member, None)
        self.capacity._counts.subtract(self.keys)
        return True

    async def __aenter__(self) -> Hold:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()


class Capacity:
    """The process's holds of every pool. `start` it in the lifespan, `close` it at the end."""

    def __init__(self, redis: Redis, *pools: Pool) -> None:
        self._redis = redis
        self._take = redis.register_script(_TAKE)
        self._held: dict[str, dict[str, Hold]] = {pool.name: {} for pool in pools}
        self._counts: Counter[str] = Counter()  # this process's holds, per user and tenant key
        self._dropped: list[Hold] = []
        self._task: asyncio.Task[None] | None = None

    def open(self, pool: Pool) -> int:
        """How many of `pool` this process holds now."""
        return len(self._held[pool.name])

    async def take(self, pool: Pool, user_id: uuid.UUID, tenant_id: uuid.UUID) -> Hold:
        """A hold of `pool` for this user of this tenant, or RateLimited (the user's or the
        tenant's limit) or ServiceUnavailable (this process's)."""
        limit, setting = pool.per_process
        if self.open(pool) >= limit:
            raise ServiceUnavailable(
                f"this server holds as many {pool.what} as it may ({limit}, {setting}); "
                "retry shortly"
            )
        keys = (
            f"docuchat:capacity:{pool.name}:user:{user_id}",
            f"docuchat:capacity:{pool.name}:tenant:{tenant_id}",
        )
        if self._counts[keys[0]] >= pool.per_user[0]:
            raise _refusal(pool, 1)
        if self._counts[keys[1]] >= pool.per_tenant[0]:
            raise _refusal(pool, 2)
        hold = Hold(self, pool, keys, uuid.uuid4().hex)
        self._held[pool.name][hold.member] = hold  # counted before the await: no race past it
        self._counts.update(keys)
        now = time.time()
        try:
            refused = await self._take(
                keys=list(keys),
                args=[now, now + LEASE_SECONDS, hold.member, pool.per_user[0],
                      pool.per_tenant[0], int(LEASE_SECONDS) * 2],
            )  # fmt: skip
        except RedisError as exc:
            log.warning("capacity leases unavailable (%s): this process's counts hold", exc)
            return hold
        except BaseException:
            hold._drop()
            raise
        if refused:
            hold._drop()
            raise _refusal(pool, refused)
        hold.leased = True
        return hold

    def guard(self, owner: object, hold: Hold) -> None:
        """Drop `hold` when `owner` (a response's body iterator) is collected without having
        let it go: a client that left before its stream began never runs its `finally`."""
        weakref.finalize(owner, self._dropped_by_owner, hold)

    def _dropped_by_owner(self, hold: Hold) -> None:
        if hold._drop() and hold.leased:
            self._dropped.append(hold)

    async def _forget(self, hold: Hold) -> None:
        if not hold.leased:
            return
        with contextlib.suppress(RedisError):  # the lease expires by itself
            pipe = self._redis.pipeline(transaction=False)
            for key in hold.keys:
                pipe.zrem(key, hold.member)
            await pipe.execute()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._renew(), name="capacity")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _renew(self) -> None:
        """Every RENEW_EVERY_SECONDS, one pipeline moves every held lease's expiry on and
        removes the leases of holds dropped without a release."""
        while True:
            await asyncio.sleep(RENEW_EVERY_SECONDS)
            dropped, self._dropped = self._dropped, []
            expiry = time.time() + LEASE_SECONDS
            pipe = self._redis.pipeline(transaction=False)
            for hold in dropped:
                for key in hold.keys:
                    pipe.zrem(key, hold.member)
            holds = [hold for held in self._held.values() for hold in held.values()]
            for hold in holds:  # written again, not only moved on: Redis may have lost them
                for key in hold.keys:
                    pipe.zadd(key, {hold.member: expiry})
                    pipe.expire(key, int(LEASE_SECONDS) * 2)
            try:
                await pipe.execute()
            except RedisError as exc:
                log.warning("could not renew capacity leases: %s", exc)
                continue
            for hold in holds:
                hold.leased = not hold.released
