"""Following a job's event stream for a reader, whatever carries it (SSE or WebSocket).

`follow` subscribes to the process's `StreamHub` (one pub/sub connection for every reader,
each reader's backlog read from its stream) and yields: the `StoredEvent`s after the
reader's position, as a list of what arrived together (ids exact, deltas coalesced for a
slow reader), so a relay writes them in one go; `None` when nothing came for a keep-alive
interval; and an `AnswerEvent` the relay makes itself (never stored, no id) when it must
stop: the server drains (`reconnect`), Redis fails, the stream expired, or the reader lost
their membership. It ends after the answer's last event.

A stream that is missing while its job is unfinished was lost with a Redis restart: the
reaper sends the job again and its new attempt starts the stream afresh, so it waits.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from api.identity import Caller, caller_of
from api.resources import ApiResources
from core.errors import AuthenticationFailed, NotFound, PermissionDenied
from db.engine import async_unit_of_work
from db.jobs import FINISHED, get_job
from transport import events
from transport.events import StoredEvent, stream_key
from transport.hub import HubClosed

log = logging.getLogger("docuchat.api")

Followed = list[StoredEvent] | events.AnswerEvent | None
DRAINING = events.Reconnect("this server is shutting down; reconnect with Last-Event-ID to read on")


async def still_member(resources: ApiResources, caller: Caller) -> bool:
    """Whether the reader is still a member of the tenant (a removed one reads no further)."""
    try:
        await caller_of(resources, caller.user_id, caller.tenant_id, None, caller.token_version)
    except (AuthenticationFailed, PermissionDenied):
        return False
    return True


async def job_finished(resources: ApiResources, caller: Caller, job_id: uuid.UUID) -> bool:
    """Whether no more events will come: the job ended, or is gone with its session."""
    async with async_unit_of_work(resources.engine, caller.tenant_id) as session:
        try:
            return (await get_job(session, job_id)).status in FINISHED
        except NotFound:
            return True


async def follow(
    resources: ApiResources, caller: Caller, job_id: uuid.UUID, last_id: str
) -> AsyncIterator[Followed]:
    key = stream_key(job_id)
    keepalive = resources.settings.sse_keepalive_seconds
    checked_at = time.monotonic()
    subscription = None
    try:
        subscription = await resources.hub.subscribe(key, last_id)
        while True:
            try:
                if time.monotonic() - checked_at >= keepalive:
                    checked_at = time.monotonic()
                    if not await still_member(resources, caller):
                        yield events.Error("access_revoked", "you are no longer a member")
                        return
                arrived = await subscription.next(keepalive)
                expired = (
                    not arrived
                    and not await resources.redis.exists(key)
                    and await job_finished(resources, caller, job_id)
                )
            except HubClosed as closed:
                yield (
                    DRAINING if closed.draining or resources.draining else _unavailable(key, closed)
                )
                return
            except (RedisError, SQLAlchemyError) as exc:
                if resources.draining:
                    yield DRAINING
                    return
                yield _unavailable(key, exc)
                return
            if not arrived:
                yield None
                if expired:
                    yield events.Error("stream_expired", "the event stream has expired")
                    return
                continue
            last = next((n for n, stored in enumerate(arrived) if stored.terminal), None)
            if last is not None:
                yield arrived[: last + 1]
                return
            yield arrived
    finally:
        if subscription is not None:
            await subscription.leave()


def _unavailable(key: str, exc: BaseException) -> events.Error:
    log.warning("stream %s interrupted: %s", key, exc)
    return events.Error("stream_unavailable", "the event stream is unavailable")
