"""Chat benchmarks: the system's own latency and cancellation.

Run with `make bench`. Starts a private embedded Postgres and Redis under .bench/, the API (the
Procfile's uvicorn command) and one worker process, with the OpenAI stand-in of the tests as
the provider, answering at once. Then, through the real HTTP API and a real SSE client:

1. time to first token at the client minus the provider's own time to first token, median and
   p99 of 40 questions: request, enqueue, worker pick-up, retrieval, prompt, Redis, relay;
2. cancellation: from `POST /v1/jobs/{id}/cancel` to the stream's `end` event, median of 10.

How many streams one API process relays is `bench/relay.py`.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
from httpx_sse import connect_sse

from api.signin.tokens import issue_access_token
from bench.stack import database_environ, migrated_owner, wait_healthy
from core.settings import Settings, load_settings
from db.engine import unit_of_work
from tests.openai_standin import StandIn
from tests.pdfs import english_pdf, filler
from tools.devstack import api_command, worker_command
from tools.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from usecases.members import create_tenant, get_or_create_user

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".bench"


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@contextmanager
def _process(command: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)


def _environment(settings: Settings, redis_url: str, standin: StandIn) -> dict[str, str]:
    return os.environ | {
        "APP_ENV": "development",
        "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": redis_url,
        "JWT_SECRET": settings.jwt_secret.get_secret_value(),
        "RATE_LIMIT_PER_MINUTE": "10000000",
        "OPENAI_BASE_URL": standin.base_url,
        "CHAT_PROVIDER": "openai",
    }


def _first_token(client: httpx.Client, question: str) -> tuple[float, dict[str, Any]]:
    started_at = time.perf_counter()
    started = client.post("/v1/chat", json={"message": question}).json()
    with connect_sse(client, "GET", started["stream_url"]) as source:
        events = source.iter_sse()
        for sse in events:
            if sse.event == "delta":
                first = time.perf_counter() - started_at
                break
        for sse in events:
            if sse.event in ("end", "error"):
                break
    return first, started


def _time_to_first_token(client: httpx.Client, standin: StandIn) -> list[str]:
    _first_token(client, "warm up: when is the lantern lit?")
    overheads, pickups = [], []
    for n in range(40):
        standin.first_piece_timings.clear()
        client_ttft, started = _first_token(client, f"When is the lantern lit? ({n})")
        received, first_piece = standin.first_piece_timings[-1]
        overheads.append(client_ttft - (first_piece - received))
        job = client.get(f"/v1/jobs/{started['job_id']}").json()
        pickups.append(_seconds_between(job["created_at"], job["started_at"]))
        time.sleep(0.05)  # let the worker fall idle, as between real questions
    ms = [o * 1000 for o in overheads]
    return [
        f"time to first token, system overhead: median {statistics.median(ms):.1f} ms, "
        f"p99 {_percentile(ms, 0.99):.1f} ms, min {min(ms):.1f} ms (n=40; target 50 / 150)",
        f"  of which worker pick-up (job created to claimed): median "
        f"{statistics.median(pickups) * 1000:.1f} ms, max {max(pickups) * 1000:.1f} ms",
    ]


def _cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _seconds_between(first: str, second: str) -> float:
    from datetime import datetime

    return (datetime.fromisoformat(second) - datetime.fromisoformat(first)).total_seconds()


def _cancellation(client: httpx.Client, standin: StandIn) -> list[str]:
    standin.reply = " ".join(f"w{i}" for i in range(400))
    standin.piece_delay = 0.02
    delays = []
    try:
        for n in range(10):
            started = client.post("/v1/chat", json={"message": f"cancel me {n}"}).json()
            with connect_sse(client, "GET", started["stream_url"]) as source:
                events = source.iter_sse()
                for sse in events:
                    if sse.event == "delta":
                        asked = time.perf_counter()
                        client.post(f"/v1/jobs/{started['job_id']}/cancel")
                        break
                for sse in events:
                    if sse.event == "end":
                        delays.append(time.perf_counter() - asked)
                        break
    finally:
        standin.piece_delay = 0.0
    ms = [d * 1000 for d in delays]
    return [
        f"cancel to `end` at the client: median {statistics.median(ms):.0f} ms, "
        f"max {max(ms):.0f} ms (n=10; required under 1000)"
    ]


def main() -> None:
    shutil.rmtree(WORK / "chat-stack", ignore_errors=True)
    (WORK / "chat-stack").mkdir(parents=True)
    postgres, embedded_redis = (
        EmbeddedPostgres(WORK / "chat-stack"),
        EmbeddedRedis(WORK / "chat-stack"),
    )
    redis_url = embedded_redis.start()
    settings = load_settings(
        {**database_environ(postgres), "REDIS_URL": redis_url, "JWT_SECRET": "b" * 40}
    )
    owner = migrated_owner(settings)
    with unit_of_work(owner) as session:
        tenant = create_tenant(session, f"bench-{uuid.uuid4().hex[:6]}", "Bench")
        user = get_or_create_user(session, tenant, "bench@example.com")
    token = issue_access_token(settings, user.id, tenant.id).token
    headers = {"Authorization": f"Bearer {token}", "X-Tenant-ID": tenant.slug}
    report: list[str] = []
    port = free_port()
    try:
        with (
            StandIn() as standin,
            _process(api_command("127.0.0.1", port), _environment(settings, redis_url, standin)),
            _process(worker_command(1, 4), _environment(settings, redis_url, standin)),
            httpx.Client(
                base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60
            ) as client,
        ):
            wait_healthy(client)
            pages = ["The lantern is lit every evening by the fishermen. " + filler(7, 5)]
            upload = client.post(
                "/v1/files", files={"file": ("lantern.pdf", english_pdf(pages), "application/pdf")}
            ).json()
            while client.get(f"/v1/jobs/{upload['job']['id']}").json()["status"] != "succeeded":
                time.sleep(0.05)
            report += _time_to_first_token(client, standin)
            report += _cancellation(client, standin)
    finally:
        owner.dispose()
        embedded_redis.stop()
        postgres.stop()
    print("\n".join(report))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
