"""Relay: how many answer streams one API process carries, and what each relayed event costs.

Run with `make bench` (or `python -m bench.relay`). Starts a private embedded Postgres and
Redis under .bench/ and BENCH_RELAY_APIS API processes (the Procfile's uvicorn command) on
queues no worker serves: the bench is the worker. For each count in BENCH_STREAMS it asks
that many questions, opens every answer's SSE stream (spread evenly over the API processes,
as a balancer in front of them would), and once every stream is open writes
DELTAS_PER_STREAM deltas to each at 20 per second through the workers' own writer
(`transport.events.append`). Every delta carries its write time, so the client measures
the latency the relay adds per token. It reports that latency (median, p99, max), tokens
lost or doubled, each API process's CPU per 1,000 relayed events and its Redis connections
while every stream is open.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import sys
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event as ProcessEvent

import httpx
import psutil
import redis

from bench.chat import _cpu_seconds, _percentile
from bench.stack import (
    WORK,
    answered_by,
    bench_members,
    environment,
    fresh_stack,
    running,
    wait_healthy,
)
from standins.model_server import StandIn
from tools.devstack import api_command
from tools.embedded import free_port
from transport import events

STREAM_COUNTS = [int(n) for n in os.environ.get("BENCH_STREAMS", "1000,2000").split(",")]
APIS = int(os.environ.get("BENCH_RELAY_APIS", "1"))
DELTAS_PER_STREAM = int(os.environ.get("BENCH_RELAY_DELTAS", "100"))
DELTA_INTERVAL = 0.05  # 20 deltas a second per stream, a typical model's pace
USERS = 50
OPENING = 50
# The relay's limits out of the way (the stack's environment lifts the rate limits): what is
# measured is the relay, not the doors.
LIMITS = {
    "MAX_STREAMS_PER_USER": "100000",
    "MAX_STREAMS_PER_TENANT": "100000",
    "MAX_STREAMS_PER_PROCESS": "50000",
}


@dataclass
class Received:
    latencies: list[float] = field(default_factory=list)
    tokens: int = 0
    doubled: int = 0
    started: int = 0
    refused: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the codes of `error` events


async def _read_stream(
    port: int, path: str, got: Received, opening: asyncio.Semaphore, ready: asyncio.Event, of: int
) -> None:
    """One SSE stream read off a plain socket, in whole chunks: a light client, so that the
    latency measured is the server's, not the client's. OPENING streams open at a time, as
    readers arrive in a real service, not all in one millisecond."""
    await opening.acquire()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    seen: set[bytes] = set()
    buffer = b""
    try:
        status = (await reader.readline()).split()
        if status[1:2] != [b"200"]:
            got.refused.append(b" ".join(status[1:]).decode())
            opening.release()
            if got.started + len(got.refused) == of:
                ready.set()
            return
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            now = time.time()
            buffer += chunk
            *complete, buffer = buffer.split(b"\n\n")
            for block in complete:
                if b"event: delta" in block:
                    data = block[block.index(b"data: ") + 6 :]
                    for stamp in data[9:-2].split():  # {"text":"<time>/<stream>.<n> ..."}
                        got.latencies.append(now - float(stamp.split(b"/")[0]))
                        got.doubled += stamp in seen
                        seen.add(stamp)
                        got.tokens += 1
                elif b"event: start" in block:
                    opening.release()
                    got.started += 1
                    if got.started + len(got.refused) == of:
                        ready.set()
                elif b"event: error" in block:
                    got.errors.append(block.split(b'"code":"')[-1].split(b'"')[0].decode())
                    return
                elif b"event: end" in block:
                    return
    finally:
        writer.close()


def _write_deltas(redis_url: str, job_ids: list[str], go: ProcessEvent) -> None:
    """The workers' part, in a process of its own: every stream's deltas at their pace."""
    go.wait()
    client = redis.Redis.from_url(redis_url)
    jobs = [uuid.UUID(job_id) for job_id in job_ids]
    for n in range(DELTAS_PER_STREAM):
        tick = time.perf_counter()
        pipe = client.pipeline(transaction=False)
        for m, job_id in enumerate(jobs):
            delta = events.Delta(f"{time.time():.6f}/{m}.{n} ")
            events.append(pipe, job_id, [delta], 3600)
        pipe.execute()
        time.sleep(max(0.0, DELTA_INTERVAL - (time.perf_counter() - tick)))
    pipe = client.pipeline(transaction=False)
    for job_id in jobs:
        events.append(pipe, job_id, [events.End("stop", events.NOTHING_SPENT)], 3600)
    pipe.execute()
    client.close()


def _redis_connections(pid: int, redis_port: int) -> int:
    return sum(
        1
        for conn in psutil.Process(pid).net_connections(kind="tcp")
        if conn.raddr and conn.raddr.port == redis_port
    )


async def _open_all(ports: list[int], paths: list[str], got: Received) -> list[asyncio.Task[None]]:
    ready, opening = asyncio.Event(), asyncio.Semaphore(OPENING)
    readers = [
        asyncio.create_task(
            _read_stream(ports[n % len(ports)], path, got, opening, ready, len(paths))
        )
        for n, path in enumerate(paths)
    ]
    try:
        await asyncio.wait_for(ready.wait(), timeout=600)
    except TimeoutError:
        raise RuntimeError(f"only {got.started} of {len(paths)} streams started") from None
    return readers


async def _ask_all(port: int, headers: list[dict[str, str]], count: int) -> list[dict[str, str]]:
    """`count` questions, OPENING at a time: each answer's stream URL and job id."""
    limits = httpx.Limits(max_connections=OPENING)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", timeout=120, limits=limits
    ) as client:

        async def ask(n: int) -> dict[str, str]:
            for _ in range(3):  # a kept-alive connection the server closed meanwhile
                try:
                    response = await client.post(
                        "/v1/chat",
                        json={"message": f"stream {n}"},
                        headers=headers[n % len(headers)],
                    )
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            response.raise_for_status()
            started: dict[str, str] = response.json()
            return started

        return await asyncio.gather(*(ask(n) for n in range(count)))


async def _relay(
    ports: list[int],
    paths: list[str],
    redis_url: str,
    jobs: list[str],
    pids: list[int],
    redis_pid: int,
) -> list[str]:
    got = Received()
    readers = await _open_all(ports, paths, got)
    redis_port = int(redis_url.split(":")[-1].split("/")[0])
    connections = [_redis_connections(pid, redis_port) for pid in pids]
    go = multiprocessing.get_context("fork").Event()
    writer = multiprocessing.get_context("fork").Process(
        target=_write_deltas, args=(redis_url, jobs, go)
    )
    writer.start()
    cpu = [_cpu_seconds(pid) for pid in pids]
    redis_cpu = _cpu_seconds(redis_pid)
    wall = time.perf_counter()
    go.set()
    await asyncio.wait_for(asyncio.gather(*readers), timeout=600)
    wall = time.perf_counter() - wall
    cpu = [_cpu_seconds(pid) - before for pid, before in zip(pids, cpu, strict=True)]
    redis_cpu = _cpu_seconds(redis_pid) - redis_cpu
    writer.join()
    ms = [latency * 1000 for latency in got.latencies] or [0.0]
    expected = len(paths) * DELTAS_PER_STREAM
    per_api = expected / len(pids)
    lost = expected - (got.tokens - got.doubled)
    return [
        f"{len(paths)} streams on {len(pids)} API process(es), {DELTAS_PER_STREAM} deltas each "
        f"at {1 / DELTA_INTERVAL:.0f}/s: added latency per token median "
        f"{statistics.median(ms):.1f} ms, p99 {_percentile(ms, 0.99):.1f} ms, "
        f"max {max(ms):.1f} ms",
        f"  streams refused {len(got.refused)} {sorted(set(got.refused))}, ended by an error "
        f"{len(got.errors)} {sorted(set(got.errors))}; tokens received "
        f"{got.tokens} of {expected} (lost {lost}, doubled {got.doubled}); "
        f"Redis connections per API process with every stream open: "
        f"{connections}",
        "  API CPU: "
        + ", ".join(f"{seconds / wall:.0%} of a core" for seconds in cpu)
        + "; per 1,000 relayed events "
        + ", ".join(f"{seconds / per_api * 1000 * 1000:.0f} ms" for seconds in cpu)
        + f"; Redis {redis_cpu / wall:.0%} of a core",
    ]


def main() -> None:
    stack = fresh_stack(WORK / "relay-stack", "b" * 40)
    redis_url = stack.settings.redis_url or ""
    _, headers = bench_members(stack, "relay", USERS)
    ports = [free_port() for _ in range(APIS)]
    try:
        with StandIn() as standin, ExitStack() as processes:
            environ = environment(stack.settings, **answered_by(standin), **LIMITS)
            apis = [
                processes.enter_context(running(api_command("127.0.0.1", p), environ))
                for p in ports
            ]
            for port in ports:
                with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                    wait_healthy(client)
            for count in STREAM_COUNTS:
                started = asyncio.run(_ask_all(ports[0], headers, count))
                paths = [s["stream_url"] for s in started]
                jobs = [s["job_id"] for s in started]
                pids = [api.pid for api in apis]
                print(
                    "\n".join(
                        asyncio.run(
                            _relay(ports, paths, redis_url, jobs, pids, stack.redis.pid or 0)
                        )
                    )
                )
                sys.stdout.flush()
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
