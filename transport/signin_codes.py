"""Single-use 6-digit sign-in codes kept in Redis as keyed hashes, never in clear: the code
store of the sign-in use case (usecases/signin.py)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis

from core.errors import SignInRejected

# Counts the try before the comparison, so parallel guesses cannot exceed the allowance.
_COUNT_ATTEMPT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, false} end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
return {attempts, redis.call('HGET', KEYS[1], 'hash')}
"""


@dataclass(frozen=True)
class SigninCodes:
    redis: Redis
    secret: bytes
    ttl_seconds: int
    max_attempts: int

    def _key(self, tenant_id: uuid.UUID, email: str) -> str:
        digest = hashlib.sha256(email.encode()).hexdigest()[:32]
        return f"docuchat:signin:{tenant_id}:{digest}"

    def _hash(self, tenant_id: uuid.UUID, email: str, code: str) -> bytes:
        message = f"{tenant_id}:{email}:{code}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest().encode()

    async def issue(self, tenant_id: uuid.UUID, email: str) -> str:
        """A fresh code for this address; any earlier one stops working."""
        code = f"{secrets.randbelow(1_000_000):06d}"
        key = self._key(tenant_id, email)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping={"hash": self._hash(tenant_id, email, code), "attempts": 0})
            pipe.expire(key, self.ttl_seconds)
            await pipe.execute()
        return code

    async def redeem(self, tenant_id: uuid.UUID, email: str, code: str) -> None:
        """Consume the code or raise SignInRejected saying why."""
        key = self._key(tenant_id, email)
        attempts, stored = await self.redis.eval(_COUNT_ATTEMPT, 1, key)
        if attempts < 0 or attempts > self.max_attempts or not stored:
            raise SignInRejected(
                "There is no valid code for this address: it expired, was used, or was never "
                "requested. Request a new code."
            )
        if hmac.compare_digest(stored, self._hash(tenant_id, email, code)):
            if await self.redis.delete(key) == 1:
                return
            raise SignInRejected("This code has already been used. Request a new code.")
        left = self.max_attempts - attempts
        if left <= 0:
            await self.redis.delete(key)
            raise SignInRejected(
                f"Wrong code. After {self.max_attempts} wrong tries the code no longer works: "
                "request a new one."
            )
        raise SignInRejected(f"Wrong code. {left} {'try' if left == 1 else 'tries'} left.")
