"""A chat job's events in one Redis Stream: workers append, the API relays them over SSE.

Stream ids are the SSE event ids, so a client resuming with Last-Event-ID reads on from
exactly where it was. Each stream is capped and expires STREAM_RETENTION_SECONDS after its
last event; a job is cancelled by setting its cancel key, which the worker polls.

Events (JSON in `data`): start, citations, delta, end (the last one of an answer) or error.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from redis.asyncio import Redis as AsyncRedis

# Far above any answer's event count; a cap only so a runaway writer cannot fill Redis.
STREAM_MAXLEN = 100_000
TERMINAL_EVENTS = frozenset({"end", "error"})
STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")


def stream_key(job_id: uuid.UUID | str) -> str:
    return f"docuchat:job:{job_id}:events"


def cancel_key(job_id: uuid.UUID | str) -> str:
    return f"docuchat:job:{job_id}:cancel"


def event_fields(event: str, payload: Any) -> dict[str, str]:
    """The stream entry for one event."""
    return {
        "event": event,
        "data": json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
    }


def usage_payload(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def error_payload(
    code: str, message: str, prompt_tokens: int = 0, completion_tokens: int = 0
) -> dict[str, object]:
    """The data of an `error` event: why the answer ended, and what it had spent."""
    return {
        "code": code,
        "message": message,
        "usage": usage_payload(prompt_tokens, completion_tokens),
    }


async def publish(
    redis: AsyncRedis, job_id: uuid.UUID, retention_seconds: int, *events: tuple[str, Any]
) -> None:
    """Append events to a job's stream from the API (the start of a job, a cancellation)."""
    key = stream_key(job_id)
    pipe = redis.pipeline(transaction=False)
    for event, payload in events:
        pipe.xadd(key, event_fields(event, payload), maxlen=STREAM_MAXLEN)  # type: ignore[arg-type]
    pipe.expire(key, retention_seconds)
    await pipe.execute()


async def forget_streams(
    redis: AsyncRedis, finished: list[uuid.UUID], unfinished: list[uuid.UUID], grace: int
) -> None:
    """The streams of deleted jobs: a finished one goes at once; an unfinished one gets its
    `end` (cancelled) for the readers following it, and goes `grace` seconds later."""
    end = {"finish_reason": "cancelled", "usage": usage_payload(0, 0)}
    pipe = redis.pipeline(transaction=False)
    for job_id in finished:
        pipe.delete(stream_key(job_id))
    for job_id in unfinished:
        pipe.xadd(stream_key(job_id), event_fields("end", end), maxlen=STREAM_MAXLEN)  # type: ignore[arg-type]
        pipe.expire(stream_key(job_id), grace)
    await pipe.execute()


async def request_cancel(redis: AsyncRedis, job_ids: list[uuid.UUID], ttl_seconds: int) -> None:
    """Tell the workers running these jobs to stop (they poll the key)."""
    if job_ids:
        pipe = redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.set(cancel_key(job_id), b"1", ex=ttl_seconds)
        await pipe.execute()
