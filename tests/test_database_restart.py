"""Postgres stopped and started again under a running API and worker: requests meanwhile get
503 with a sentence, and both recover by themselves once it is back (pool pre-ping, retries).

These tests stop the run's shared Postgres for a few seconds; every test after them finds it
running again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import redis
from sqlalchemy import Engine, text

from standins.documents import english_pdf, filler
from tests.ingest_helpers import tenant_client, upload, wait_for_job
from tests.stack import LiveServer, OwnDatabase, Services, WorkerProcess, settings_for
from transport.queue import BROKER_NAMESPACE


@pytest.fixture
def database_down_for_a_while(services: Services) -> Iterator[Services]:
    """Yields with Postgres running; whatever the test stops is started again afterwards."""
    try:
        yield services
    finally:
        services.postgres.start()


def test_requests_while_the_database_is_down_are_503_and_the_api_recovers(
    database_down_for_a_while: Services, engine: Engine
) -> None:
    services = database_down_for_a_while
    settings = settings_for(services, RATE_LIMIT_PER_MINUTE="100000")
    with LiveServer(settings) as server, tenant_client(engine, settings, server.url) as client:
        assert client.get("/v1/files").status_code == 200  # the pool now holds a connection

        services.postgres.stop()
        down = {
            "list": client.get("/v1/files"),
            "usage": client.get("/v1/usage"),
            "upload": upload(client, english_pdf([filler(1, 5)])),
            "chat": client.post("/v1/chat", json={"message": "anything?"}),
        }
        health = httpx.get(f"{server.url}/healthz", timeout=10)

        services.postgres.start()
        after = client.get("/v1/files")  # the same server process, not restarted

    for name, response in down.items():
        assert response.status_code == 503, (name, response.text)
        assert response.json()["detail"] == "the database is unavailable; try again shortly"
        assert response.headers["Retry-After"] == "5"
    assert health.status_code == 503
    assert health.json()["checks"]["database"]["status"] == "down"
    assert after.status_code == 200
    assert after.json()["items"] == []  # the upload refused while down left nothing behind


def test_a_job_taken_while_the_database_is_down_is_retried_and_finishes_once(
    own_database: OwnDatabase, database_down_for_a_while: Services, redis_database: str
) -> None:
    services = database_down_for_a_while
    engine = own_database.engine
    settings = own_database.settings(
        services,
        REDIS_URL=redis_database,  # no worker listens here yet
        RATE_LIMIT_PER_MINUTE="100000",
    )
    pages = [filler(seed, 30) for seed in range(3)]
    with LiveServer(settings) as server, tenant_client(engine, settings, server.url) as client:
        uploaded = upload(client, english_pdf(pages))
        assert uploaded.status_code == 202, uploaded.text
        job_id, document_id = uploaded.json()["job"]["id"], uploaded.json()["document"]["id"]

        services.postgres.stop()
        with WorkerProcess(settings) as worker:  # takes the job and cannot reach the database
            assert _retry_scheduled(settings.redis_url or "")
            assert worker.process is not None and worker.process.poll() is None  # still up
            services.postgres.start()
            job = wait_for_job(client, job_id)

    assert job["status"] == "succeeded", job
    with engine.connect() as conn:
        chunks, distinct, last_page = conn.execute(
            text(
                "SELECT count(*), count(DISTINCT ordinal), max(page_end) FROM chunks"
                " WHERE document_id = :d"
            ),
            {"d": document_id},
        ).one()
    assert chunks == distinct > 0  # stored once, whatever the attempts
    assert last_page == len(pages)


def _retry_scheduled(redis_url: str, timeout: float = 30) -> bool:
    """True once Dramatiq has put the ingest turn back, delayed, for a retry (its claim could
    not reach the database)."""
    deadline = time.monotonic() + timeout
    with redis.Redis.from_url(redis_url) as client:
        while time.monotonic() < deadline:
            if client.hlen(f"{BROKER_NAMESPACE}:ingest.DQ.msgs"):
                return True
            time.sleep(0.1)
    return False
