"""Ingestion benchmarks on the embedded default, and recall@6 on the dev retrieval set.

Run with `make bench`. Starts a private embedded Postgres and Redis under .bench/, the API and
one worker process (the Procfile's commands), then measures through the real HTTP API:

1. upload-to-ready of a two-page PDF, median of 10 (after one warm-up);
2. a 120-page PDF: pages per second, and whole ingestion time over the time the embedder alone
   needs for the same chunks (everything but embedding is overhead);
3. peak RSS of the worker process while it ingests a 500-page PDF;
4. recall@6 of /v1/search on bench/dev_qa.json (real PDFs from Debian documentation packages,
   fetched with `apt-get download` into .bench/ the first time).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil

from api.signin.tokens import issue_access_token
from bench.stack import database_environ, migrated_owner, wait_healthy
from core.settings import Settings, load_settings
from db.engine import unit_of_work
from pipeline.chunking import chunk_pages
from pipeline.embedding import LocalE5Embedder
from pipeline.ingest import normalised_pages
from pipeline.pdf import opened_pdf
from tests.pdfs import english_pdf, filler
from tools.devstack import api_command, worker_command
from tools.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from usecases.members import create_tenant, get_or_create_user

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".bench"
QA = Path(__file__).with_name("dev_qa.json")


def _environment(settings: Settings) -> dict[str, str]:
    return os.environ | {
        "APP_ENV": "development",
        "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": settings.redis_url or "",
        "JWT_SECRET": settings.jwt_secret.get_secret_value(),
        "RATE_LIMIT_PER_MINUTE": "1000000",
        "MAX_PAGES": "600",
        "MAX_UPLOAD_MB": "100",
    }


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


def _eval_pdfs() -> dict[str, Path]:
    spec = json.loads(QA.read_text())
    debs = WORK / "debs"
    folders: dict[str, Path] = {}
    for name, doc in spec["documents"].items():
        folder = debs / doc["deb"]
        if not (folder / doc["path"]).exists():
            folder.mkdir(parents=True, exist_ok=True)
            subprocess.run(["apt-get", "download", doc["deb"]], cwd=folder, check=True)
            for deb in folder.glob("*.deb"):
                subprocess.run(["dpkg", "-x", str(deb), str(folder)], check=True)
        folders[name] = folder / doc["path"]
    return folders


def _recall(client: httpx.Client) -> tuple[float, list[str]]:
    spec = json.loads(QA.read_text())
    ids = {}
    for name, path in _eval_pdfs().items():
        response = client.post(
            "/v1/files", files={"file": (name, path.read_bytes(), "application/pdf")}
        )
        response.raise_for_status()
        if response.json()["job"]:
            _wait_ready(client, response.json()["job"]["id"])
        ids[name] = response.json()["document"]["id"]
    lines, hits = [], 0
    for question in spec["questions"]:
        results = client.post("/v1/search", json={"query": question["q"], "top_k": 6}).json()[
            "results"
        ]
        wanted = set(question["pages"])
        hit = any(
            r["document_id"] == ids[question["doc"]]
            and wanted & set(range(r["page_start"], r["page_end"] + 1))
            for r in results
        )
        hits += hit
        lines.append(
            f"  {'hit ' if hit else 'MISS'} {question['doc']} p{question['pages']}: {question['q']}"
        )
    return hits / len(spec["questions"]), lines


def main() -> None:
    shutil.rmtree(WORK / "stack", ignore_errors=True)
    (WORK / "stack").mkdir(parents=True)
    postgres, redis = EmbeddedPostgres(WORK / "stack"), EmbeddedRedis(WORK / "stack")
    settings = load_settings({
        **database_environ(postgres), "REDIS_URL": redis.start(), "JWT_SECRET": "b" * 40,
    })  # fmt: skip
    owner = migrated_owner(settings)
    with unit_of_work(owner) as session:
        tenant = create_tenant(session, f"bench-{uuid.uuid4().hex[:6]}", "Bench")
        user = get_or_create_user(session, tenant, "bench@example.com")
    token = issue_access_token(settings, user.id, tenant.id).token
    port = free_port()
    env = _environment(settings)
    api = subprocess.Popen(api_command("127.0.0.1", port), env=env, cwd=ROOT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    worker = subprocess.Popen(worker_command(1, 2), env=env, cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    headers = {"Authorization": f"Bearer {token}", "X-Tenant-ID": tenant.slug}
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

            recall, lines = _recall(client)
            report.append(f"recall@6 on bench/dev_qa.json: {recall:.2f}")
            report.extend(lines)
    finally:
        for process in (api, worker):
            process.terminate()
            process.wait(timeout=30)
        owner.dispose()
        redis.stop()
        postgres.stop()
    print("\n".join(report))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
