"""Hostile PDFs are refused or failed with a reason, in bounded memory, and nothing else is
harmed: the reader runs in a child process with limits (pipeline/pdf_isolation.py)."""

from __future__ import annotations

import io
import os
import signal
import zipfile
from collections.abc import Iterator
from pathlib import Path

import docx
import httpx
import pytest
from sqlalchemy import Engine

from core.settings import Settings
from pipeline.errors import CorruptPdf, PdfTooDemanding, PermanentError, TooManyPages
from pipeline.pdf import PageText
from pipeline.pdf_isolation import ReadLimits, count_pages, read_pdf
from standins import hostile_pdfs
from standins.documents import english_pdf, filler
from tests.ingest_helpers import tenant_client, upload, wait_for_job
from tests.stack import LiveServer, OwnDatabase, Services, WorkerProcess

LIMITS = ReadLimits(max_pages=500, memory_mb=256, cpu_seconds=30, page_chars=100_000)


def _pages(tmp_path: Path, data: bytes, limits: ReadLimits = LIMITS) -> list[PageText]:
    path = tmp_path / "hostile.pdf"
    path.write_bytes(data)
    with read_pdf(path, limits) as source:
        return list(source.pages())


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """About 0.5 MB that inflates to 512 MB, twice the memory the tests allow a reader."""
    return hostile_pdfs.decompression_bomb(inflated_mb=512)


@pytest.mark.parametrize(
    "data",
    [hostile_pdfs.one_page()[:300], hostile_pdfs.random_after_header()],
    ids=["truncated", "random-bytes-after-a-header"],
)
def test_damaged_files_are_refused_with_a_reason(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(CorruptPdf, match="damaged and cannot be opened"):
        _pages(tmp_path, data)


@pytest.mark.parametrize(
    "data",
    [
        hostile_pdfs.deeply_nested(),
        hostile_pdfs.page_count_lie(),
        hostile_pdfs.page_tree_loop(),
        hostile_pdfs.javascript_actions(),
    ],
    ids=["nested-100000-deep", "count-lie", "tree-loop", "javascript"],
)
def test_structures_built_to_trip_parsers_are_read_for_their_text_alone(
    tmp_path: Path, data: bytes
) -> None:
    pages = _pages(tmp_path, data)
    assert 1 <= len(pages) <= 3
    assert "harbour lantern" in pages[0].text


def test_a_huge_page_tree_is_refused_by_its_page_count(tmp_path: Path) -> None:
    with pytest.raises(TooManyPages, match="has 200000 pages; the limit is 500"):
        _pages(tmp_path, hostile_pdfs.huge_page_tree())


def test_a_decompression_bomb_fails_on_the_memory_limit(tmp_path: Path, bomb: bytes) -> None:
    with pytest.raises(PdfTooDemanding, match="more than the 256 MB of memory allowed"):
        _pages(tmp_path, bomb)
    # Counting pages reads no content stream: the API can check the upload cheaply.
    path = tmp_path / "bomb.pdf"
    path.write_bytes(bomb)
    assert count_pages(path, LIMITS) == 1


def test_a_page_flooded_with_text_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PdfTooDemanding, match=r"page 1 holds [\d,]+ characters"):
        _pages(tmp_path, hostile_pdfs.text_flood(150_000))


def test_a_reader_that_crashes_fails_the_file_not_the_caller(tmp_path: Path) -> None:
    path = tmp_path / "fine.pdf"
    # More text than a pipe holds: the reader is still alive, blocked on writing, when killed
    # (with three pages it could finish and exit before the signal landed).
    path.write_bytes(english_pdf([filler(n, 10) for n in range(150)]))
    with read_pdf(path, LIMITS) as source, pytest.raises(CorruptPdf, match=r"crashed .*SIGSEGV"):
        for page in source.pages():
            if page.number == 1:
                os.kill(source.child_pid, signal.SIGSEGV)


def test_every_rejection_is_a_permanent_error() -> None:
    for kind in (CorruptPdf, PdfTooDemanding, TooManyPages):
        assert issubclass(kind, PermanentError)


# ---- through the HTTP API and a real worker ---------------------------------------------------


@pytest.fixture(scope="module")
def engine(fleet: OwnDatabase) -> Engine:
    """The limited worker's fleet: a database and queues of its own."""
    return fleet.engine


@pytest.fixture(scope="module")
def limited_settings(services: Services, fleet: OwnDatabase) -> Settings:
    return fleet.settings(
        services,
        PDF_MEMORY_LIMIT_MB="256",
        RATE_LIMIT_PER_MINUTE="100000",
    )


@pytest.fixture(scope="module")
def limited_worker(limited_settings: Settings, engine: Engine) -> Iterator[WorkerProcess]:
    with WorkerProcess(limited_settings, threads=2) as worker:
        yield worker


@pytest.fixture
def client(
    limited_settings: Settings, engine: Engine, limited_worker: WorkerProcess
) -> Iterator[httpx.Client]:
    with (
        LiveServer(limited_settings) as server,
        tenant_client(engine, limited_settings, server.url) as client,
    ):
        yield client


def _worker_pids(worker: WorkerProcess) -> set[int]:
    """The dramatiq main process and its worker processes."""
    assert worker.process is not None
    main = worker.process.pid
    children = Path(f"/proc/{main}/task/{main}/children").read_text().split()
    return {main, *map(int, children)}


def _peak_rss_mb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) // 1024


def test_a_bomb_fails_its_job_while_the_worker_and_other_uploads_carry_on(
    client: httpx.Client, limited_worker: WorkerProcess, bomb: bytes
) -> None:
    warm_up = upload(client, english_pdf([filler(2, 20)]), "warm-up.pdf")
    assert wait_for_job(client, warm_up.json()["job"]["id"])["status"] == "succeeded"
    workers = _worker_pids(limited_worker)  # now that the worker process has started
    assert len(workers) == 2
    bombed = upload(client, bomb, "bomb.pdf")
    assert bombed.status_code == 202, bombed.text  # one page: nothing to refuse at upload
    fine = upload(client, english_pdf([filler(1, 20)]), "fine.pdf")
    assert fine.status_code == 202
    failed = wait_for_job(client, bombed.json()["job"]["id"])
    assert failed["status"] == "failed"
    assert "more than the 256 MB of memory allowed (PDF_MEMORY_LIMIT_MB)" in failed["error"]
    document = client.get(f"/v1/files/{bombed.json()['document']['id']}").json()
    assert document["status"] == "failed" and "256 MB" in document["error"]
    assert wait_for_job(client, fine.json()["job"]["id"])["status"] == "succeeded"
    assert _worker_pids(limited_worker) == workers  # no worker process died or was replaced
    assert all(_peak_rss_mb(pid) < 512 for pid in workers)  # the bomb inflated elsewhere


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (hostile_pdfs.random_after_header(), 422, "damaged and cannot be opened"),
        (hostile_pdfs.huge_page_tree(), 422, "has 200000 pages"),
        (b"\x00" * 64 + b"MZ not a pdf", 415, "not a PDF"),
    ],
    ids=["random-bytes", "huge-page-tree", "not-a-pdf"],
)
def test_hostile_uploads_are_refused_at_the_door(
    client: httpx.Client, data: bytes, status: int, message: str
) -> None:
    response = upload(client, data, "hostile.pdf")
    assert response.status_code == status
    assert message in response.json()["detail"]


def test_a_pdf_with_javascript_is_ingested_for_its_text(client: httpx.Client) -> None:
    response = upload(client, hostile_pdfs.javascript_actions(), "scripted.pdf")
    assert response.status_code == 202, response.text
    job = wait_for_job(client, response.json()["job"]["id"])
    assert job["status"] == "succeeded", job
    hits = client.post("/v1/search", json={"query": "harbour lantern"}).json()["results"]
    assert hits and "harbour lantern" in hits[0]["text"]


def _word_bomb(inflated_mb: int) -> bytes:
    """A real .docx whose document part inflates to `inflated_mb` MB of one paragraph."""
    empty = io.BytesIO()
    docx.Document().save(empty)
    out = io.BytesIO()
    with (
        zipfile.ZipFile(empty) as original,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive,
    ):
        for item in original.infolist():
            if item.filename != "word/document.xml":
                archive.writestr(item, original.read(item))
        with archive.open("word/document.xml", "w", force_zip64=True) as part:
            part.write(
                b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/'
                b'2006/main"><w:body><w:p><w:r><w:t>'
            )
            for _ in range(inflated_mb):
                part.write(b"lantern " * (1 << 17))
            part.write(b"</w:t></w:r></w:p></w:body></w:document>")
    return out.getvalue()


def test_a_word_document_bomb_is_named_as_a_word_document(tmp_path: Path) -> None:
    path = tmp_path / "bomb.docx"
    path.write_bytes(_word_bomb(inflated_mb=320))
    with (
        pytest.raises(PdfTooDemanding) as refused,
        read_pdf(path, LIMITS) as source,
    ):
        list(source.pages())
    assert "reading this Word document needs more than the 256 MB" in str(refused.value)
    assert "PDF " not in str(refused.value).replace("PDF_MEMORY_LIMIT_MB", "")


def test_a_text_file_past_the_page_limit_is_named_as_a_text_file(tmp_path: Path) -> None:
    path = tmp_path / "long.txt"
    path.write_text("The lantern is lit at dusk. " * 2000)  # 56,000 characters
    with (
        pytest.raises(TooManyPages, match=r"the text file has \d+ pages \(sections"),
        read_pdf(path, ReadLimits(max_pages=5)) as source,
    ):
        list(source.pages())
