"""A fair fleet, measured: run with `make bench` (or `python -m bench.fairness`).

Starts a private embedded Postgres and Redis under .bench/, the API, and workers as
`docuchat dev` starts them (a chat worker, and an ingest worker of one process and two
threads), then measures through the real HTTP API:

1. a question's time (ask to the stream's `end`), median of 5, idle;
2. tenant A floods the fleet with twelve 20-page PDFs; right after, tenant B uploads a 2-page
   PDF: B's upload-to-ready, and how many of A's documents were ready by then;
3. the question's time during that flood (median of 5), over the idle median;
4. tenant A sends four PDFs whose pages each want about 3 s of CPU (under the 5 s page
   budget, so they are read, not skipped) with both ingest slots A's: the question's time
   meanwhile, over idle;
5. a 200-page PDF on one ingest worker process, then on two (two threads each, the tenant
   allowed four batches at once): the time, the ratio, and how many of the machine's cores
   were busy meanwhile (one process already keeps more than one busy: its PDF reader runs
   in a child while its threads embed).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import psutil

from bench.stack import (
    WORK,
    Stack,
    bench_tenant,
    environment,
    fresh_stack,
    start_process,
    stop_processes,
    wait_healthy,
)
from standins.chat_client import ask, read_stream
from standins.documents import costly_pdf, english_pdf, filler
from tools.devstack import api_command, worker_command
from tools.embedded import free_port

FINISHED = ("succeeded", "failed", "cancelled")


@contextmanager
def _workers(env: dict[str, str], ingest_processes: int = 1) -> Iterator[None]:
    """A chat worker (1 x 8) and an ingest worker (`ingest_processes` x 2), as the dev stack."""
    commands = [
        worker_command(1, 8, queues=("chat",)),
        worker_command(ingest_processes, 2, queues=("ingest",)),
    ]
    processes = [start_process(command, env) for command in commands]
    try:
        time.sleep(3)  # the worker processes boot (and load the embedder on first use)
        yield
    finally:
        stop_processes(*processes)


def _client(stack: Stack, base: str, name: str) -> httpx.Client:
    _, headers = bench_tenant(stack, name)
    return httpx.Client(base_url=base, headers=headers, timeout=600)


def _upload(client: httpx.Client, data: bytes, name: str) -> str:
    response = client.post("/v1/files", files={"file": (name, data, "application/pdf")})
    response.raise_for_status()
    job_id: str = response.json()["job"]["id"]
    return job_id


def _wait(client: httpx.Client, job_id: str) -> dict[str, Any]:
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in FINISHED:
            if job["status"] != "succeeded":
                raise RuntimeError(f"ingestion failed: {job}")
            return job
        time.sleep(0.05)


def _question_seconds(client: httpx.Client, n: int = 5) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        answer = read_stream(
            client, ask(client, "Where does the copper lantern hang?")["stream_url"]
        )
        if answer.names[-1] != "end":
            raise RuntimeError(f"the answer ended with {answer.names[-1]}")
        times.append(time.perf_counter() - started)
    return times


def _busy_seconds(before: Any, after: Any) -> float:
    """CPU seconds the whole machine spent on anything but idling between two samples."""
    idle = ("idle", "iowait")
    spent = sum(getattr(after, f) - getattr(before, f) for f in after._fields if f not in idle)
    return float(spent)


def _ready(client: httpx.Client, job_ids: list[str]) -> int:
    return sum(
        client.get(f"/v1/jobs/{job_id}").json()["status"] == "succeeded" for job_id in job_ids
    )


def main() -> None:
    stack = fresh_stack(WORK / "fairness", "b" * 40)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = environment(
        stack.settings, MAX_PAGES="600", MAX_UPLOAD_MB="100", CHAT_PROVIDER="extractive"
    )
    api = start_process(api_command("127.0.0.1", port), env)
    report: list[str] = []
    clients = {name: _client(stack, base, name) for name in ("a", "b", "c")}
    a, b, c = clients["a"], clients["b"], clients["c"]
    try:
        wait_healthy(c)
        with _workers(env):
            harbour = "The copper lantern hangs in the old harbour. " + filler(1, 6)
            _wait(c, _upload(c, english_pdf([harbour, filler(2, 6)]), "harbour.pdf"))
            _question_seconds(c, 2)  # warm-up
            idle = statistics.median(_question_seconds(c))
            report.append(f"question, idle: median {idle * 1000:.0f} ms (n=5)")

            flood = [english_pdf([filler(100 * d + p, 12) for p in range(20)]) for d in range(12)]
            small = english_pdf(["The small report. " + filler(900, 6), filler(901, 6)])
            began = time.perf_counter()
            a_jobs = [_upload(a, data, f"flood-{n}.pdf") for n, data in enumerate(flood)]
            sent = time.perf_counter()
            _wait(b, _upload(b, small, "small.pdf"))
            b_wait = time.perf_counter() - sent
            a_ready_then = _ready(a, a_jobs)
            during = statistics.median(_question_seconds(c))
            for job_id in a_jobs:
                _wait(a, job_id)
            flood_seconds = time.perf_counter() - began
            report.append(
                f"tenant B's 2-page upload sent after A's twelve 20-page PDFs: ready in "
                f"{b_wait:.2f} s, when {a_ready_then} of A's 12 were ready "
                f"(A's twelve took {flood_seconds:.1f} s)"
            )
            report.append(
                f"question during the flood: median {during * 1000:.0f} ms (n=5), "
                f"{during / idle:.2f}x idle"
            )

        costly_env = env | {"TENANT_INGEST_CONCURRENCY": "2"}
        with _workers(costly_env):
            pages = [("", 35_000_000)] * 3  # ~3 s of CPU each, under the 5 s budget
            costly = [costly_pdf([(f"Costly {d}. " + filler(d, 2), 0), *pages]) for d in range(4)]
            began = time.perf_counter()
            a_jobs = [_upload(a, data, f"costly-{n}.pdf") for n, data in enumerate(costly)]
            time.sleep(1)  # both ingest slots are reading
            during_costly = statistics.median(_question_seconds(c))
            still_reading = 4 - _ready(a, a_jobs)
            for job_id in a_jobs:
                _wait(a, job_id)
            report.append(
                f"question while both ingest slots read ~3 s pages: median "
                f"{during_costly * 1000:.0f} ms (n=5), {during_costly / idle:.2f}x idle; "
                f"{still_reading} of 4 costly PDFs still in work after the questions "
                f"(all four took {time.perf_counter() - began:.1f} s)"
            )

        long_pdf = english_pdf([filler(5000 + n, 12) for n in range(200)])
        scaled_env = env | {"TENANT_INGEST_CONCURRENCY": "4"}
        seconds: dict[int, float] = {}
        busy: dict[int, float] = {}
        for processes in (1, 2):
            with _workers(scaled_env, ingest_processes=processes):
                client = _client(stack, base, f"scale{processes}")
                _wait(client, _upload(client, english_pdf([filler(7, 4)]), "warm.pdf"))
                began, cpu = time.perf_counter(), psutil.cpu_times()
                _wait(client, _upload(client, long_pdf, "long.pdf"))
                seconds[processes] = time.perf_counter() - began
                busy[processes] = _busy_seconds(cpu, psutil.cpu_times()) / seconds[processes]
                client.close()
        report.append(
            f"200-page PDF: {seconds[1]:.1f} s on one ingest worker process, {seconds[2]:.1f} s "
            f"on two; ratio {seconds[2] / seconds[1]:.2f} (ideal 1/2); cores busy meanwhile "
            f"{busy[1]:.2f} and {busy[2]:.2f} of this machine's {os.cpu_count()}"
        )
    finally:
        for client in clients.values():
            client.close()
        stop_processes(api)
        stack.stop()
    print("\n".join(report))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
