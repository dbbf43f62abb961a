import os
import signal
import subprocess
import sys

import httpx

from tests.stack import (
    TEST_JWT_SECRET,
    LiveServer,
    Services,
    settings_for,
    worker_environment,
)
from tools.devstack import api_command
from tools.embedded import EmbeddedRedis, free_port


def test_healthz_reports_each_dependency(services: Services, engine) -> None:  # type: ignore[no-untyped-def]
    with LiveServer(settings_for(services)) as server:
        response = httpx.get(f"{server.url}/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "database": "ok",
        "redis": "ok",
        "broker": "ok",
        "disk": "ok",
    }
    assert set(body["checks"]["broker"]["detail"]) == {"workers", "queued_ingest", "queued_chat"}


def test_healthz_is_503_when_redis_stops(services: Services, engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    own_redis = EmbeddedRedis(tmp_path)
    settings = settings_for(services, REDIS_URL=own_redis.start())
    try:
        with LiveServer(settings) as server:
            assert httpx.get(f"{server.url}/healthz").status_code == 200
            own_redis.stop()
            response = httpx.get(f"{server.url}/healthz", timeout=10)
    finally:
        own_redis.stop()
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["redis"]["status"] == "down" and checks["redis"]["error"]
    assert checks["broker"]["status"] == "down"
    assert checks["database"]["status"] == "ok"


def test_openapi_schema_is_served(services: Services, engine) -> None:  # type: ignore[no-untyped-def]
    with LiveServer(settings_for(services)) as server:
        schema = httpx.get(f"{server.url}/schema/openapi.json").json()
    assert schema["info"]["title"] == "DocuChat"
    assert "/healthz" in schema["paths"]


def test_api_refuses_to_start_when_the_embedding_width_differs(services: Services, engine) -> None:  # type: ignore[no-untyped-def]
    env = os.environ | {
        "APP_ENV": "test",
        "DATABASE_URL": services.database_url,
        "REDIS_URL": services.redis_url,
        "JWT_SECRET": TEST_JWT_SECRET,
        "EMBEDDING_PROVIDER": "openai",
        "OPENAI_API_KEY": "sk-test",
    }
    result = subprocess.run(
        api_command("127.0.0.1", free_port()), env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "refusing to start" in result.stderr
    assert "vector(384)" in result.stderr and "makes 1536" in result.stderr


def test_cors_allows_the_frontend_and_the_headers_the_api_needs(services: Services, engine) -> None:  # type: ignore[no-untyped-def]
    # As docs/deploy.md writes it: exact origins, comma separated.
    settings = settings_for(services, FRONTEND_ORIGIN="https://app.example,http://localhost:5173")
    with LiveServer(settings) as server:
        second = httpx.get(f"{server.url}/healthz", headers={"Origin": "http://localhost:5173"})
        response = httpx.options(
            f"{server.url}/healthz",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization, x-tenant-id, last-event-id",
            },
        )
        other = httpx.get(f"{server.url}/healthz", headers={"Origin": "https://evil.example"})
    assert response.status_code in (200, 204)
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "x-tenant-id" in allowed and "last-event-id" in allowed
    assert "access-control-allow-origin" not in other.headers
    assert second.headers["access-control-allow-origin"] == "http://localhost:5173"


def test_ocr_that_cannot_run_is_reported_by_healthz_and_by_workers_at_start(
    services: Services, engine
) -> None:  # type: ignore[no-untyped-def]
    with LiveServer(settings_for(services)) as server:
        assert httpx.get(f"{server.url}/healthz").json()["ocr"]["available"] is True
    settings = settings_for(services, OCR_LANGUAGES="fas+eng+xyz")
    with LiveServer(settings) as server:
        ocr = httpx.get(f"{server.url}/healthz").json()["ocr"]
    assert ocr == {"available": False, "languages": "fas+eng+xyz", "missing": ["xyz"]}

    # A worker of no queue (it takes nobody's jobs) says so at start, with how to turn it on.
    command = [sys.executable, "-m", "dramatiq", "workers.broker:setup", "workers.actors"]
    environ = worker_environment(settings, OCR_LANGUAGES="fas+eng+xyz")
    worker = subprocess.Popen(
        [*command, "--queues", "no-such-queue", "--processes", "1", "--threads", "1"],
        env=environ,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert worker.stderr is not None
        said = next(line for line in worker.stderr if "OCR is off" in line)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=30)
    assert "xyz missing" in said and "apt-get install tesseract-ocr" in said
