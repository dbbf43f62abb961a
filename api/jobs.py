"""`GET /v1/jobs/{id}`, what scripts poll while a job runs, and `POST /v1/jobs/{id}/cancel`."""

from __future__ import annotations

from litestar import Router, get, post
from litestar.params import FromPath

from api.chat import stream_url
from api.identity import Caller, CallerDep
from api.job_events import events_url, job_events
from api.openapi import problem_responses
from api.params import parse_id
from api.resources import ApiResources, ResourcesDep
from api.schemas import JobOut, job_out
from db.engine import async_unit_of_work
from db.jobs import get_job
from db.models import Job
from usecases import jobs
from usecases.jobs import visible


def _out(resources: ApiResources, caller: Caller, job: Job) -> JobOut:
    url = stream_url(resources, caller, job.id) if job.kind == "chat" else None
    return job_out(job, url, events_url(resources, caller, job.id))


@get("/{job_id:str}", summary="A job's status, progress and error")
async def get_job_status(
    resources: ResourcesDep, caller: CallerDep, job_id: FromPath[str]
) -> JobOut:
    ident = parse_id(job_id, "job")
    async with async_unit_of_work(resources.engine, caller.tenant_id) as session:
        job = visible(await get_job(session, ident), caller)
    return _out(resources, caller, job)


@post(
    "/{job_id:str}/cancel",
    status_code=200,
    summary="Cancel a queued or running job; a generation stops within a second",
    responses=problem_responses(409),
)
async def cancel(resources: ResourcesDep, caller: CallerDep, job_id: FromPath[str]) -> JobOut:
    job = await jobs.cancel(resources, caller, parse_id(job_id, "job"))
    return _out(resources, caller, job)


router = Router("/jobs", tags=["jobs"], route_handlers=[get_job_status, job_events, cancel])
