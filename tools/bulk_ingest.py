"""`docuchat ingest`: load a folder of PDFs through the HTTP API, with a progress bar.

Through the API, not around it: the same checks, page limits, quotas and duplicate detection
as any upload, from any machine that can reach it. Resumable by construction: the API knows a
file it already has by its bytes (200 instead of 202), so running the command again skips what
is done and uploads the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import connect_sse

MAX_ATTEMPTS = 5  # for answers that say "try again": 429 from the rate limit, 503
FOLLOWED_AT_ONCE = 16  # event streams open at once while waiting for ingestions


@dataclass
class FileResult:
    path: Path
    outcome: str  # uploaded | already there | refused | failed | succeeded
    detail: str = ""
    job_id: str | None = None


@dataclass
class BulkReport:
    results: list[FileResult] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for result in self.results if result.outcome == outcome)

    @property
    def problems(self) -> list[FileResult]:
        return [r for r in self.results if r.outcome in ("refused", "failed")]


# What a folder is searched for; a file named on the command line is sent whatever its name.
DOCUMENT_SUFFIXES = frozenset({".pdf", ".docx", ".html", ".htm", ".md", ".markdown", ".txt"})


def documents_under(paths: Iterable[Path]) -> list[Path]:
    """The files named, and the documents in the folders named (recursively: PDF, Word, HTML,
    Markdown and text files), each once, sorted."""
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found.update(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in DOCUMENT_SUFFIXES
            )
        else:
            found.add(path)
    return sorted(found)


def upload_one(client: httpx.Client, path: Path) -> FileResult:
    for attempt in range(MAX_ATTEMPTS):
        with path.open("rb") as data:
            response = client.post(
                "/v1/files", files={"file": (path.name, data, "application/pdf")}
            )
        retryable = response.status_code == 503 or (
            response.status_code == 429 and "quota" not in response.text
        )
        if retryable and attempt + 1 < MAX_ATTEMPTS:
            time.sleep(float(response.headers.get("Retry-After", "1")))
            continue
        break
    body = (
        response.json()
        if response.headers.get("content-type", "").startswith("application/json")
        else {}
    )
    if response.status_code == 202:
        return FileResult(path, "uploaded", job_id=body["job"]["id"])
    if response.status_code == 200:
        document = body["document"]
        detail = document["status"] + (f": {document['error']}" if document.get("error") else "")
        return FileResult(path, "already there", detail)
    return FileResult(
        path, "refused", f"{response.status_code}: {body.get('detail', response.text)}"
    )


def follow_job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    """The job's `end` (status and error), read from its events as they come
    (GET /v1/jobs/{id}/events): nothing polls. A dropped connection resumes after the last
    event seen."""
    last_id = ""
    for attempt in range(MAX_ATTEMPTS):
        headers = {"Last-Event-ID": last_id} if last_id else {}
        try:
            with connect_sse(client, "GET", f"/v1/jobs/{job_id}/events", headers=headers) as source:
                if source.response.status_code == 204:  # its end was already seen
                    break
                source.response.raise_for_status()
                for event in source.iter_sse():
                    last_id = event.id or last_id
                    if event.event == "end":
                        ended: dict[str, Any] = event.json()
                        return ended
        except httpx.TransportError:
            time.sleep(min(2**attempt, 10))
    job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
    return job


def ingest_paths(
    client: httpx.Client,
    paths: list[Path],
    *,
    concurrency: int = 4,
    wait: bool = True,
    on_uploaded: Callable[[FileResult], None] = lambda _: None,
    on_finished: Callable[[FileResult], None] = lambda _: None,
) -> BulkReport:
    """Upload every path (`concurrency` at a time), then, with `wait`, follow their ingestion
    by their events until each has succeeded or failed."""
    report = BulkReport()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for result in pool.map(lambda p: upload_one(client, p), paths):
            report.results.append(result)
            on_uploaded(result)
    waiting = [r for r in report.results if r.job_id is not None]
    if not wait or not waiting:
        return report

    def finish(result: FileResult) -> FileResult:
        ended = follow_job(client, str(result.job_id))
        result.outcome = "succeeded" if ended.get("status") == "succeeded" else "failed"
        result.detail = ended.get("error") or ""
        return result

    with ThreadPoolExecutor(max_workers=FOLLOWED_AT_ONCE) as pool:
        for result in pool.map(finish, waiting):
            on_finished(result)
    return report
