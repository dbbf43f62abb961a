"""Ingestion benchmarks on the embedded default.

Run with `make bench`. Starts a private embedded Postgres and Redis under .bench/, the API and
one worker process (the Procfile's commands), then measures through the real HTTP API:

1. upload-to-ready of a two-page PDF, median of 10 (after one warm-up);
2. a 120-page PDF: pages per second, and whole ingestion time over the time the embedder alone
   needs for the same chunks (everything but embedding is overhead);
3. peak RSS of the worker process while it ingests a 500-page PDF.

Retrieval and answer quality on the dev set are bench/quality.py's.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.stack import (
    WORK,
    bench_tenant,
    environment,
    fresh_stack,
    start_process,
    stop_processes,
    wait_healthy,
)
from core.settings import Settings
from pipeline.chunking import chunk_pages
from pipeline.embedding import LocalE5Embedder
from pipeline.ingest import normalised_pages
from pipeline.pdf import opened_pdf
from standins.documents import english_pdf, filler
from tools.devstack import api_command, worker_command
from tools.embedded import free_port


def _wait_ready(client: httpx.Client, job_id: str) -> dict[str, Any]:
    while True:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            if job["status"] != "succeeded":
                raise RuntimeError(f"ingestion failed: {job}")
            return job
        time.sleep(0.01)


def _ingest(client: httpx.Client, data: bytes, name: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    response = client.post("/v1/files", files={"file": (name, data, "application/pdf")})
    response.raise_for_status()
    job = _wait_ready(client, response.json()["job"]["id"])
    return time.perf_counter() - started, job


def _embed_only_seconds(data: bytes, settings: Settings) -> tuple[float, int]:
    with tempfile.NamedTemporaryFile(suffix=".pdf") as file:
        file.write(data)
        file.flush()
        with opened_pdf(Path(file.name), 10_000) as source:
            chunks = chunk_pages(
                normalised_pages(source.pages()), settings.chunk_token_size, settings.chunk_overlap
            )
            texts = [chunk.text for chunk in chunks]
    embedder = LocalE5Embedder()
    embedder.embed_passages(texts[:2])  # load the weights outside the timing
    started = time.perf_counter()
    for start in range(0, len(texts), settings.embedding_batch_size):
        embedder.embed_passages(texts[start : start + settings.embedding_batch_size])
    return time.perf_counter() - started, len(texts)


def _peak_rss(worker: psutil.Process, stop: threading.Event, peak: list[int]) -> None:
    while not stop.is_set():
        try:
            rss = max(p.memory_info().rss for p in worker.children(recursive=True))
            peak[0] = max(peak[0], rss)
        except (psutil.Error, ValueError):
            pass
        time.sleep(0.05)


def main() -> None:
    stack = fresh_stack(WORK / "stack", "b" * 40)
    settings = stack.settings
    _, headers = bench_tenant(stack, "bench")
    port = free_port()
    env = environment(settings, MAX_PAGES="600", MAX_UPLOAD_MB="100")
    api = start_process(api_command("127.0.0.1", port), env)
    worker = start_process(worker_command(1, 2), env)
    report: list[str] = []
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=600
        ) as client:
            wait_healthy(client)

            _ingest(client, english_pdf([filler(999, 6), filler(998, 6)]), "warm.pdf")
            times = [
                _ingest(client, english_pdf([filler(n, 6), filler(n + 50, 6)]), f"two-{n}.pdf")[0]
                for n in range(10)
            ]
            report.append(
                f"two-page PDF upload-to-ready: median {statistics.median(times):.3f} s, "
                f"min {min(times):.3f} s, max {max(times):.3f} s (n=10)"
            )

            long_pdf = english_pdf([filler(1000 + n, 12) for n in range(120)])
            seconds, job = _ingest(client, long_pdf, "long.pdf")
            pages = job["progress"]["pages_total"]
            embed_seconds, chunks = _embed_only_seconds(long_pdf, settings)
            report.append(
                f"{pages}-page PDF: {seconds:.1f} s upload-to-ready, "
                f"{pages / seconds:.1f} pages/s, "
                f"{chunks} chunks; embedder alone {embed_seconds:.1f} s "
                f"({embed_seconds / seconds:.0%} of the time); ratio {seconds / embed_seconds:.2f}x"
            )

            stop, peak = threading.Event(), [0]
            watcher = threading.Thread(
                target=_peak_rss, args=(psutil.Process(worker.pid), stop, peak), daemon=True
            )
            watcher.start()
            huge = english_pdf([filler(5000 + n, 3) for n in range(500)])
            seconds, job = _ingest(client, huge, "huge.pdf")
            stop.set()
            watcher.join()
            report.append(
                f"500-page PDF: {seconds:.1f} s, peak worker RSS {peak[0] / 2**20:.0f} MB "
                f"({job['progress']['chunks_total']} chunks)"
            )
    finally:
        stop_processes(api, worker)
        stack.stop()
    print("\n".join(report))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
