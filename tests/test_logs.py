"""The API's and the workers' logs: one JSON object per line, each carrying the request,
tenant and job it belongs to, and the request id echoed to the client."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess

import httpx

from core import logs
from standins.documents import english_pdf, filler
from tests.ingest_helpers import tenant_client, upload, wait_for_job
from tests.stack import (
    TEST_JWT_SECRET,
    OwnDatabase,
    Services,
    WorkerProcess,
    wait_until_healthy,
)
from tools.devstack import api_command
from tools.embedded import free_port


def test_a_record_becomes_one_json_line_with_the_ids_in_context() -> None:
    record = logging.LogRecord(
        "docuchat.x", logging.WARNING, __file__, 1, "hello %s", ("you",), None
    )
    token = logs.job_id.set("job-1")
    try:
        line = logs.JsonFormatter().format(record)
    finally:
        logs.job_id.reset(token)
    entry = json.loads(line)
    assert "\n" not in line
    assert entry | {"ts": None} == {
        "ts": None,
        "level": "warning",
        "logger": "docuchat.x",
        "message": "hello you",
        "job_id": "job-1",
    }


def test_api_and_worker_lines_are_json_with_request_tenant_and_job(
    services: Services, own_database: OwnDatabase, redis_database: str
) -> None:
    """The worker whose lines are read must be the one that ingests: a fleet of its own."""
    engine = own_database.engine
    settings = own_database.settings(services, REDIS_URL=redis_database)
    port = free_port()
    environ = os.environ | {
        "APP_ENV": "test",
        "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": settings.redis_url or "",
        "JWT_SECRET": TEST_JWT_SECRET,
    }
    api = subprocess.Popen(
        api_command("127.0.0.1", port), env=environ, stderr=subprocess.PIPE, text=True
    )
    worker = WorkerProcess(settings)
    worker_process = subprocess.Popen(
        worker.command, env=worker.environ, stderr=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base, api)
        with tenant_client(engine, settings, base) as client:
            given = client.get("/v1/me", headers={"X-Request-ID": "trace-42.a"})
            made = client.get("/v1/files")
            odd = client.get("/v1/me", headers={"X-Request-ID": "no spaces allowed"})
            refused = httpx.get(f"{base}/v1/me")  # no token: refused before any route runs
            uploaded = upload(client, english_pdf([filler(4, 6)]), "logged.pdf")
            job = wait_for_job(client, uploaded.json()["job"]["id"])
    finally:
        worker_process.send_signal(signal.SIGTERM)
        api.send_signal(signal.SIGTERM)
        worker_output = worker_process.communicate(timeout=30)[1]
        api_output = api.communicate(timeout=30)[1]
    tenant = given.json()["tenant"]["id"]

    assert given.headers["X-Request-ID"] == "trace-42.a"  # a caller's own id is kept
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["X-Request-ID"])
    assert re.fullmatch(r"[0-9a-f]{32}", odd.headers["X-Request-ID"])  # not a sane id
    lines = api_output.splitlines()
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    access = {e["request_id"]: e for e in entries if e["logger"] == "docuchat.access"}
    assert access["trace-42.a"] | {"duration_ms": 0, "ts": 0, "message": ""} == {
        "ts": 0,
        "level": "info",
        "logger": "docuchat.access",
        "message": "",
        "request_id": "trace-42.a",
        "tenant_id": tenant,
        "method": "GET",
        "path": "/v1/me",
        "status": 200,
        "duration_ms": 0,
    }
    assert access[made.headers["X-Request-ID"]]["path"] == "/v1/files"
    assert refused.status_code == 401
    assert access[refused.headers["X-Request-ID"]]["status"] == 401
    assert job["status"] == "succeeded"
    worker_entries = [
        json.loads(line) for line in worker_output.splitlines() if line.startswith("{")
    ]
    ingested = next(e for e in worker_entries if "ingested document" in e["message"])
    assert ingested["job_id"] == job["id"] and ingested["tenant_id"] == tenant
