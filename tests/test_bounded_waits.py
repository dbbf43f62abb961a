"""Postgres or Redis frozen (SIGSTOP) under a running API: requests get 503 with Retry-After
and a sentence by their deadline instead of waiting for the freeze to end, and the API serves
again once the dependency answers.

Postgres is the run's own server (every backend stopped with it), so the test resumes it
whatever happens; Redis is the test's own.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.ingest_helpers import tenant_client
from tests.stack import LiveServer, OwnDatabase, Services
from tools.embedded import EmbeddedRedis

DEADLINE = 2.0  # REQUEST_DEADLINE_SECONDS here
BOUND = 8.0  # what a client may wait at most: the deadline, and slack for a loaded machine


@contextmanager
def frozen(pids: list[int]) -> Iterator[None]:
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in reversed(pids):
            os.kill(pid, signal.SIGCONT)


def _postgres_processes(services: Services) -> list[int]:
    """The postmaster and every process it started: frozen together, as a machine would be."""
    postmaster = int((services.postgres.pgdata / "postmaster.pid").read_text().split()[0])
    found = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True)
    return [*map(int, found.stdout.split()), postmaster]


def _timed(
    client: httpx.Client, method: str, url: str, **kwargs: object
) -> tuple[float, httpx.Response]:
    began = time.monotonic()
    response = client.request(method, url, timeout=60, **kwargs)  # type: ignore[arg-type]
    return time.monotonic() - began, response


def _refused_in_time(waited: float, response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "5"
    assert "not answering" in response.json()["detail"]
    assert waited < BOUND


def _serves_again(client: httpx.Client, url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (status := client.get(url, timeout=30).status_code) != 200:
        assert time.monotonic() < deadline, f"still {status} after the freeze"
        time.sleep(0.2)


def test_a_frozen_postgres_costs_a_request_its_deadline_not_the_freeze(
    services: Services, own_database: OwnDatabase
) -> None:
    settings = own_database.settings(
        services, REQUEST_DEADLINE_SECONDS=str(DEADLINE), RATE_LIMIT_PER_MINUTE="100000"
    )
    with (
        LiveServer(settings) as server,
        tenant_client(own_database.engine, settings, server.url) as client,
    ):
        assert client.get("/v1/files").status_code == 200
        with frozen(_postgres_processes(services)):
            listed = _timed(client, "GET", "/v1/files")
            asked = _timed(client, "POST", "/v1/chat", json={"message": "Is it there?"})
        _refused_in_time(*listed)
        _refused_in_time(*asked)
        _serves_again(client, "/v1/files")


def test_a_frozen_redis_costs_a_request_its_deadline_not_the_freeze(
    services: Services, own_database: OwnDatabase, own_redis: EmbeddedRedis
) -> None:
    settings = own_database.settings(
        services,
        REDIS_URL=own_redis.url,
        REQUEST_DEADLINE_SECONDS=str(DEADLINE),
        RATE_LIMIT_PER_MINUTE="100000",
    )
    with (
        LiveServer(settings) as server,
        tenant_client(own_database.engine, settings, server.url) as client,
    ):
        assert client.get("/v1/files").status_code == 200
        assert own_redis.pid
        with frozen([own_redis.pid]):
            asked = _timed(client, "POST", "/v1/chat", json={"message": "Is it there?"})
        _refused_in_time(*asked)
        _serves_again(client, "/v1/files")
