"""`GET /v1/jobs/{id}/events`: a job's progress as Server-Sent Events, for any job.

`progress` on each change of status or progress (stage, pages and chunks done and total),
then `end` with the final status and error; a finished job answers its `end` at once. Ids
are the job's version (its last change, in microseconds), so Last-Event-ID resumes: what the
reader saw is not sent again, and the `end` it saw answers 204 (EventSource stops there).

Changes arrive from Postgres itself (`db/job_watch.py`): nothing polls. At every keep-alive
the job is read once more anyway, and the reader's membership checked.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import weakref
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from api.capacity import Hold
from api.chat import RECONNECT_MS, stream_caller
from api.identity import Caller
from api.openapi import problem_responses
from api.params import parse_id
from api.relay import still_member
from api.resources import ApiResources, ResourcesDep
from api.signin.tokens import issue_stream_token
from core.errors import InvalidInput, NotFound
from db.engine import async_unit_of_work
from db.jobs import FINISHED, get_job
from db.models import Job
from usecases.jobs import visible

EVENTS_PATH = r"^/v1/jobs/[^/]+/events$"


def events_url(resources: ApiResources, caller: Caller, job_id: uuid.UUID) -> str:
    token = issue_stream_token(
        resources.settings, caller.user_id, caller.tenant_id, job_id, caller.token_version
    )
    return f"/v1/jobs/{job_id}/events?token={token}"


def version_of(job: Job) -> str:
    return str(int(job.updated_at.timestamp() * 1_000_000))


def _event(job: Job) -> ServerSentEventMessage:
    if job.status in FINISHED:
        data: dict[str, Any] = {"job_id": str(job.id), "status": job.status, "error": job.error}
        name = "end"
    else:
        progress = job.progress or {}
        data = {
            "job_id": str(job.id),
            "kind": job.kind,
            "status": job.status,
            "stage": progress.get("stage"),
            "pages_done": progress.get("pages_done"),
            "pages_total": progress.get("pages_total"),
            "chunks_done": progress.get("chunks_done"),
            "chunks_total": progress.get("chunks_total"),
        }
        name = "progress"
    return ServerSentEventMessage(
        data=msgspec.json.encode(data).decode(), event=name, id=version_of(job)
    )


async def _load(resources: ApiResources, caller: Caller, job_id: uuid.UUID) -> Job:
    async with async_unit_of_work(resources.engine, caller.tenant_id) as session:
        return visible(await get_job(session, job_id), caller)


@get(
    "/{job_id:str}/events",
    summary="A job's progress as Server-Sent Events: progress..., then end",
    description=(
        "For any job (an upload's ingestion or a question). Authenticate with the `token` of "
        "the job's `events_url` (EventSource cannot send headers) or the bearer header. "
        "`progress` carries status, stage, pages_done/pages_total and chunks_done/"
        "chunks_total; `end` the final status and error. Reconnecting with Last-Event-ID "
        "sends only what changed since; the `end` already seen answers 204."
    ),
    security=[{}],
    responses={204: ResponseSpec(None, description="the job ended and its end was seen")},
)
async def job_events(
    request: Request[Any, Any, Any],
    resources: ResourcesDep,
    job_id: FromPath[str],
    token: Annotated[str | None, QueryParameter(name="token", max_length=4096)] = None,
) -> Response[Any]:
    ident = parse_id(job_id, "job")
    caller = await stream_caller(request, resources, ident, token)
    changed = resources.job_watch.watch(ident)
    try:
        job = await _load(resources, caller, ident)
    except BaseException:
        resources.job_watch.unwatch(ident, changed)
        raise
    seen = request.headers.get("last-event-id", "").strip()
    if seen and not seen.isdigit():
        resources.job_watch.unwatch(ident, changed)
        raise InvalidInput("Last-Event-ID", "not an event id this stream gave out")
    if seen == version_of(job) and job.status in FINISHED:
        resources.job_watch.unwatch(ident, changed)
        return Response(None, status_code=204)
    try:
        hold = await resources.capacity.take(resources.streams, caller.user_id, caller.tenant_id)
    except BaseException:
        resources.job_watch.unwatch(ident, changed)
        raise
    body = _follow(resources, caller, job, seen, changed, hold)
    resources.capacity.guard(body, hold)
    # A client gone before its stream began never runs the stream's `finally`.
    weakref.finalize(body, resources.job_watch.unwatch, ident, changed)
    return ServerSentEvent(body, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _follow(
    resources: ApiResources,
    caller: Caller,
    job: Job,
    seen: str,
    changed: asyncio.Event,
    hold: Hold,
) -> AsyncIterator[ServerSentEventMessage]:
    keepalive = resources.settings.sse_keepalive_seconds
    retry: int | None = RECONNECT_MS
    checked_at = time.monotonic()
    try:
        while True:
            # A finished job's end is always sent, even by a writer that kept its version.
            if version_of(job) != seen or job.status in FINISHED:
                seen = version_of(job)
                message = _event(job)
                message.retry, retry = retry, None
                yield message
            if job.status in FINISHED:
                return
            try:
                await asyncio.wait_for(changed.wait(), keepalive)
            except TimeoutError:
                yield ServerSentEventMessage(data=None, comment="keep-alive", retry=retry)
                retry = None
            # At least once a keep-alive interval, however often the job changes.
            if time.monotonic() - checked_at >= keepalive:
                checked_at = time.monotonic()
                if not await still_member(resources, caller):
                    return
            changed.clear()
            if resources.draining:
                return
            try:
                job = await _load(resources, caller, job.id)
            except NotFound:
                return
    finally:
        resources.job_watch.unwatch(job.id, changed)
        await hold.release()


__all__ = ["EVENTS_PATH", "events_url", "job_events", "problem_responses"]
