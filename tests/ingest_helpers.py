"""An API client signed in to a fresh tenant, and waiting for jobs: shared by the tests."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
from sqlalchemy import Engine, select, text

from api.signin.tokens import issue_access_token
from core.settings import Settings
from db.engine import unit_of_work
from db.models import Tenant
from usecases.members import create_tenant, get_or_create_user

FINISHED = ("succeeded", "failed", "cancelled")


def tenant_client(
    engine: Engine, settings: Settings, base_url: str, role: str = "member"
) -> httpx.Client:
    """An httpx client for a new tenant's new user, token and tenant header preset."""
    with unit_of_work(engine) as session:
        tenant = create_tenant(session, f"t-{uuid.uuid4().hex[:10]}", "Ingest Tenant")
        user = get_or_create_user(session, tenant, f"u-{uuid.uuid4().hex[:8]}@example.com")
        user.role = role
    token = issue_access_token(settings, user.id, tenant.id).token
    return httpx.Client(
        base_url=base_url,
        timeout=30,
        headers={"Authorization": f"Bearer {token}", "X-Tenant-ID": tenant.slug},
    )


def colleague_client(
    engine: Engine, settings: Settings, client: httpx.Client, role: str = "member"
) -> httpx.Client:
    """A client for a new user, with this role, of the same tenant as `client`."""
    slug = client.headers["X-Tenant-ID"]
    with unit_of_work(engine) as session:
        tenant = session.scalars(select(Tenant).where(Tenant.slug == slug)).one()
        user = get_or_create_user(session, tenant, f"c-{uuid.uuid4().hex[:8]}@example.com")
        user.role = role
    token = issue_access_token(settings, user.id, tenant.id).token
    return httpx.Client(
        base_url=str(client.base_url),
        timeout=30,
        headers={"Authorization": f"Bearer {token}", "X-Tenant-ID": slug},
    )


def upload(client: httpx.Client, data: bytes, name: str = "doc.pdf") -> httpx.Response:
    return client.post("/v1/files", files={"file": (name, data, "application/pdf")})


def wait_for_job(
    client: httpx.Client, job_id: str, until: tuple[str, ...] = FINISHED, timeout: float = 90
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        if job["status"] in until:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['status']}: {job}")
        time.sleep(0.1)


def ingest(client: httpx.Client, data: bytes, name: str = "doc.pdf") -> dict[str, Any]:
    """Upload and wait until ingestion succeeds; returns the ready document."""
    response = upload(client, data, name)
    assert response.status_code == 202, response.text
    job = wait_for_job(client, response.json()["job"]["id"])
    assert job["status"] == "succeeded", job
    document: dict[str, Any] = client.get(f"/v1/files/{job['document_id']}").json()
    return document


def assert_one_set_of_chunks(engine: Engine, document: dict[str, Any], pages: int) -> None:
    """The document holds exactly one set of chunks (no ordinal twice) covering pages
    1..`pages`: what a batch run again, on any worker, must leave."""
    with engine.connect() as conn:
        chunks = conn.execute(
            text("SELECT ordinal, page_start, page_end FROM chunks WHERE document_id = :d"),
            {"d": document["id"]},
        ).all()
    ordinals = [ordinal for ordinal, _, _ in chunks]
    assert len(ordinals) == len(set(ordinals)) == document["chunks"], "one set of chunks"
    covered = {page for _, start, end in chunks for page in range(start, end + 1)}
    assert covered == set(range(1, pages + 1)), "every page is in it"
