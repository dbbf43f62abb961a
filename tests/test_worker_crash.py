"""A worker killed with SIGKILL mid-ingestion: another worker finishes the job, no duplicates.

This test's API and workers use their own Redis database, so the run's shared worker cannot
take the message first: the one worker alive when the upload lands is the one that dies.
"""

from __future__ import annotations

import time

from sqlalchemy import Engine, text

from tests.conftest import LiveServer, Services, WorkerProcess, settings_for
from tests.ingest_helpers import tenant_client, upload, wait_for_job
from tests.pdfs import english_pdf, filler


def test_a_killed_worker_s_job_is_redelivered_and_finished_once(
    services: Services, engine: Engine
) -> None:
    settings = settings_for(
        services,
        REDIS_URL=services.redis_url.rsplit("/", 1)[0] + "/3",
        WORKER_HEARTBEAT_TIMEOUT_SECONDS="2",
        RATE_LIMIT_PER_MINUTE="100000",
    )
    pdf = english_pdf([filler(n, 20) for n in range(20)])
    with LiveServer(settings) as server, tenant_client(engine, settings, server.url) as client:
        first = WorkerProcess(settings, threads=1).__enter__()
        try:
            response = upload(client, pdf, "long.pdf")
            assert response.status_code == 202, response.text
            job_id = response.json()["job"]["id"]
            document_id = response.json()["document"]["id"]
            deadline = time.monotonic() + 60
            while client.get(f"/v1/jobs/{job_id}").json()["progress"].get("stage") != "embedding":
                assert time.monotonic() < deadline, "the first worker never started embedding"
                time.sleep(0.05)
        finally:
            first.kill()
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "running"  # orphaned
        with WorkerProcess(settings, threads=1):
            job = wait_for_job(client, job_id, timeout=120)
        assert job["status"] == "succeeded", job
        document = client.get(f"/v1/files/{document_id}").json()
    with engine.connect() as conn:
        ordinals = [
            row[0]
            for row in conn.execute(
                text("SELECT ordinal FROM chunks WHERE document_id = :d ORDER BY ordinal"),
                {"d": document_id},
            )
        ]
        usage = conn.execute(
            text(
                "SELECT count(*) FROM usage_records u JOIN documents d "
                "ON d.uploaded_by = u.user_id WHERE d.id = :d AND u.kind = 'embedding'"
            ),
            {"d": document_id},
        ).scalar()
    assert document["status"] == "ready"
    assert ordinals == list(range(document["chunks"])), "exactly one set of chunks"
    assert usage == 1, "the embedding usage is counted once"
