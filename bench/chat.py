"""Chat benchmarks: the system's own latency, cancellation, and how many streams one API relays.

Run with `make bench`. Starts a private embedded Postgres and Redis under .bench/, the API (the
Procfile's uvicorn command) and one worker process, with the OpenAI stand-in of the tests as
the provider, answering at once. Then, through the real HTTP API and a real SSE client:

1. time to first token at the client minus the provider's own time to first token, median and
   p99 of 40 questions: request, enqueue, worker pick-up, retrieval, prompt, Redis, relay;
2. cancellation: from `POST /v1/jobs/{id}/cancel` to the stream's `end` event, median of 10;
3. relay: N concurrent SSE streams held by one API process while the bench writes 50 deltas
   per stream into their Redis Streams at 20 per second (a typical model's pace); each delta
   carries its write time, so the client measures the relay's added latency per token, and
   the API process's Redis connections are counted while every stream is open.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis
from httpx_sse import connect_sse

from api.signin.tokens import issue_access_token
from bench.stack import database_environ, migrated_owner, wait_healthy
from core.settings import Settings, load_settings
from db.engine import unit_of_work
from tests.openai_standin import StandIn
from tests.pdfs import english_pdf, filler
from tools.devstack import api_command, worker_command
from tools.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from transport import events
from usecases.members import create_tenant, get_or_create_user

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".bench"
STREAM_COUNTS = [int(n) for n in os.environ.get("BENCH_STREAMS", "100,500,1000").split(",")]
DELTAS_PER_STREAM = 50
DELTA_INTERVAL = 0.05


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


async def _read_stream(
    port: int,
    path: str,
    latencies: list[float],
    ready: asyncio.Event,
    counts: list[int],
    streams: int,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    deltas = 0
    event = ""
    while True:
        line = (await reader.readline()).decode().rstrip("\r\n")
        if not line and reader.at_eof():
            break
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            if event == "start":
                counts[0] += 1
                if counts[0] == streams:
                    ready.set()
            elif event == "delta":
                now = time.time()
                for stamp in json.loads(line[6:])["text"].split():
                    latencies.append(now - float(stamp))
                    deltas += 1
            elif event == "end":
                break
    counts[1] += deltas
    writer.close()


def _write_deltas(redis_url: str, job_ids: list[str], retention: int) -> None:
    with redis.Redis.from_url(redis_url) as client:
        for _ in range(DELTAS_PER_STREAM):
            tick = time.perf_counter()
            pipe = client.pipeline(transaction=False)
            for job_id in job_ids:
                delta = events.Delta(f"{time.time():.6f} ")
                events.append(pipe, uuid.UUID(job_id), [delta], retention)
            pipe.execute()
            time.sleep(max(0.0, DELTA_INTERVAL - (time.perf_counter() - tick)))
        pipe = client.pipeline(transaction=False)
        end = events.End("stop", events.NOTHING_SPENT)
        for job_id in job_ids:
            events.append(pipe, uuid.UUID(job_id), [end], retention)
        pipe.execute()


def _redis_connections(pid: int, redis_url: str) -> int:
    """TCP connections from process `pid` to the Redis server of `redis_url`."""
    port = int(redis_url.split(":")[-1].split("/")[0])
    return sum(
        1
        for conn in psutil.Process(pid).net_connections(kind="tcp")
        if conn.raddr and conn.raddr.port == port
    )


async def _relay(
    port: int, paths: list[str], redis_url: str, job_ids: list[str], api_pid: int
) -> list[str]:
    latencies: list[float] = []
    counts = [0, 0]  # streams started, deltas received
    ready = asyncio.Event()
    readers = [
        asyncio.create_task(_read_stream(port, path, latencies, ready, counts, len(paths)))
        for path in paths
    ]
    try:
        await asyncio.wait_for(ready.wait(), timeout=120)
    except TimeoutError:
        raise RuntimeError(f"only {counts[0]} of {len(paths)} streams started") from None
    connections = _redis_connections(api_pid, redis_url)
    writer = threading.Thread(target=_write_deltas, args=(redis_url, job_ids, 3600))
    writer.start()
    await asyncio.wait_for(asyncio.gather(*readers), timeout=300)
    writer.join()
    ms = [latency * 1000 for latency in latencies]
    expected = len(paths) * DELTAS_PER_STREAM
    return [
        f"{len(paths)} concurrent streams on one API process, {DELTAS_PER_STREAM} deltas each at "
        f"{1 / DELTA_INTERVAL:.0f}/s: added latency per token median "
        f"{statistics.median(ms):.1f} ms, p99 {_percentile(ms, 0.99):.1f} ms, "
        f"max {max(ms):.1f} ms (target p99 at most 50)",
        f"  tokens received {counts[1]} of {expected} (lost {expected - counts[1]}); "
        f"the API process's Redis connections with all {len(paths)} open: {connections}",
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
    # The relay's API gets queues of its own that no worker serves: the bench writes the deltas.
    relay_redis = redis_url.rsplit("/", 1)[0] + "/1"
    owner = migrated_owner(settings)
    with unit_of_work(owner) as session:
        tenant = create_tenant(session, f"bench-{uuid.uuid4().hex[:6]}", "Bench")
        user = get_or_create_user(session, tenant, "bench@example.com")
    token = issue_access_token(settings, user.id, tenant.id).token
    headers = {"Authorization": f"Bearer {token}", "X-Tenant-ID": tenant.slug}
    report: list[str] = []
    port, relay_port = free_port(), free_port()
    try:
        with (
            StandIn() as standin,
            _process(api_command("127.0.0.1", port), _environment(settings, redis_url, standin)),
            _process(worker_command(1, 4), _environment(settings, redis_url, standin)),
            _process(
                api_command("127.0.0.1", relay_port),
                _environment(settings, relay_redis, standin),
            ) as relay_api,
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
            with httpx.Client(
                base_url=f"http://127.0.0.1:{relay_port}", headers=headers, timeout=60
            ) as relay_client:
                wait_healthy(relay_client)
                for count in STREAM_COUNTS:
                    started = [
                        relay_client.post("/v1/chat", json={"message": f"stream {n}"}).json()
                        for n in range(count)
                    ]
                    paths = [s["stream_url"] for s in started]
                    jobs = [s["job_id"] for s in started]
                    api_cpu, own_cpu = _cpu_seconds(relay_api.pid), time.process_time()
                    wall = time.perf_counter()
                    report += asyncio.run(
                        _relay(relay_port, paths, relay_redis, jobs, relay_api.pid)
                    )
                    wall = time.perf_counter() - wall
                    report.append(
                        f"  CPU during the relay: API process "
                        f"{(_cpu_seconds(relay_api.pid) - api_cpu) / wall:.0%} of a core, "
                        f"bench client and writer {(time.process_time() - own_cpu) / wall:.0%}"
                    )
    finally:
        owner.dispose()
        embedded_redis.stop()
        postgres.stop()
    print("\n".join(report))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
