"""`GET /v1/jobs/{id}`: what scripts poll while a job runs."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.params import FromPath

from api.files import parse_id
from api.identity import Caller
from api.resources import resources_of
from api.schemas import JobOut, job_out
from db.engine import async_unit_of_work
from db.jobs import get_job


@get("/v1/jobs/{job_id:str}", tags=["jobs"], summary="A job's status, progress and error")
async def get_job_status(request: Request[Caller, Any, Any], job_id: FromPath[str]) -> JobOut:
    resources = resources_of(request)
    ident = parse_id(job_id, "job")
    async with async_unit_of_work(resources.engine, request.user.tenant_id) as session:
        return job_out(await get_job(session, ident))
