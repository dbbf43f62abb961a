"""`GET /v1/jobs/{id}`, what scripts poll while a job runs, and `POST /v1/jobs/{id}/cancel`."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath

from api.chat import stream_url
from api.identity import Caller
from api.job_events import events_url
from api.openapi import problem_responses
from api.params import parse_id
from api.resources import ApiResources, resources_of
from api.schemas import JobOut, job_out
from db.engine import async_unit_of_work
from db.jobs import get_job
from db.models import Job
from usecases import jobs
from usecases.jobs import visible


def _out(resources: ApiResources, caller: Caller, job: Job) -> JobOut:
    url = stream_url(resources, caller, job.id) if job.kind == "chat" else None
    return job_out(job, url, events_url(resources, caller, job.id))


@get("/v1/jobs/{job_id:str}", tags=["jobs"], summary="A job's status, progress and error")
async def get_job_status(request: Request[Caller, Any, Any], job_id: FromPath[str]) -> JobOut:
    resources = resources_of(request)
    ident = parse_id(job_id, "job")
    async with async_unit_of_work(resources.engine, request.user.tenant_id) as session:
        job = visible(await get_job(session, ident), request.user)
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
    job = await jobs.cancel(resources, request.user, parse_id(job_id, "job"))
    return _out(resources, request.user, job)
