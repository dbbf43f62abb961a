"""`GET /v1/jobs/{id}`, what scripts poll while a job runs, and `POST /v1/jobs/{id}/cancel`."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath

from api.chat import stream_url
from api.files import parse_id
from api.identity import Caller
from api.openapi import problem_responses
from api.resources import ApiResources, resources_of
from api.schemas import JobOut, job_out
from core.errors import NotFound
from core.job_streams import publish, request_cancel, usage_payload
from db.chat import cancel_queued_answer
from db.engine import async_unit_of_work
from db.jobs import cancel_job, get_job
from db.models import Job


def _visible(job: Job, caller: Caller) -> Job:
    """Ingest jobs are the tenant's; a chat job is its user's alone."""
    if job.kind == "chat" and job.user_id != caller.user_id:
        raise NotFound(f"no job {job.id}")
    return job


def _out(resources: ApiResources, caller: Caller, job: Job) -> JobOut:
    url = stream_url(resources, caller, job.id) if job.kind == "chat" else None
    return job_out(job, url)


@get("/v1/jobs/{job_id:str}", tags=["jobs"], summary="A job's status, progress and error")
async def get_job_status(request: Request[Caller, Any, Any], job_id: FromPath[str]) -> JobOut:
    resources = resources_of(request)
    ident = parse_id(job_id, "job")
    async with async_unit_of_work(resources.engine, request.user.tenant_id) as session:
        job = _visible(await get_job(session, ident), request.user)
    return _out(resources, request.user, job)


@post(
    "/v1/jobs/{job_id:str}/cancel",
    status_code=200,
    tags=["jobs"],
    summary="Cancel a queued or running job; a generation stops within a second",
    responses=problem_responses(409),
)
async def cancel(request: Request[Caller, Any, Any], job_id: FromPath[str]) -> JobOut:
    resources = resources_of(request)
    caller, retention = request.user, resources.settings.stream_retention_seconds
    ident = parse_id(job_id, "job")
    async with async_unit_of_work(resources.engine, caller.tenant_id) as session:
        _visible(await get_job(session, ident), caller)
        job, previous = await cancel_job(session, ident)
        if job.kind == "chat" and previous == "queued":
            await cancel_queued_answer(session, ident)
    if job.kind == "chat":
        await request_cancel(resources.redis, [ident], retention)
        if previous == "queued":  # no worker will write the end of this answer
            end = {"finish_reason": "cancelled", "usage": usage_payload(0, 0)}
            await publish(resources.redis, ident, retention, ("end", end))
    return _out(resources, caller, job)
