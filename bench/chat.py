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

import statistics
import sys
import time
from typing import Any

import httpx
import psutil
from httpx_sse import connect_sse

from bench.stack import (
    WORK,
    answered_by,
    bench_tenant,
    environment,
    fresh_stack,
    running,
    wait_healthy,
)
from standins.documents import english_pdf, filler
from standins.model_server import StandIn
from tools.devstack import api_command, worker_command
from tools.embedded import free_port


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


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
    stack = fresh_stack(WORK / "chat-stack", "b" * 40)
    _, headers = bench_tenant(stack, "bench")
    report: list[str] = []
    port = free_port()
    try:
        with StandIn() as standin:
            env = environment(stack.settings, **answered_by(standin))
            with (
                running(api_command("127.0.0.1", port), env),
                running(worker_command(1, 4), env),
                httpx.Client(
                    base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60
                ) as client,
            ):
                wait_healthy(client)
                pages = ["The lantern is lit every evening by the fishermen. " + filler(7, 5)]
                upload = client.post(
                    "/v1/files",
                    files={"file": ("lantern.pdf", english_pdf(pages), "application/pdf")},
                ).json()
                while client.get(f"/v1/jobs/{upload['job']['id']}").json()["status"] != "succeeded":
                    time.sleep(0.05)
                report += _time_to_first_token(client, standin)
                report += _cancellation(client, standin)
    finally:
        stack.stop()
    print("\n".join(report))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
