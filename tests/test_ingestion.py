"""Upload to searchable through the real HTTP API, a real worker process, Postgres and Redis."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine, text

from core.settings import Settings
from standins.documents import (
    blank_pdf,
    costly_pdf,
    encrypted_pdf,
    english_pdf,
    filler,
    persian_filler,
    persian_pdf,
    scanned_pdf,
)
from tests.ingest_helpers import colleague_client, ingest, tenant_client, upload, wait_for_job
from tests.stack import LiveServer, Services, settings_for

PAGE_ONE = "The copper lantern hangs in the old harbour. Fishermen light it every evening."
PAGE_TWO = "The glacier above the village hides a quartz cave. Climbers reach it in summer."
FA_PAGE_ONE = "کتابخانه‌ی مرکزی شهر در سال ۱۳۵۰ ساخته شد. این کتابخانه هزاران کتاب فارسی دارد."
FA_PAGE_TWO = "باغ انار در شمال روستا است. کشاورزان در پاییز انار می‌چینند و آب انار می‌گیرند."


@pytest.fixture(scope="module")
def api_settings(services: Services) -> Settings:
    return settings_for(services, RATE_LIMIT_PER_MINUTE="100000", MAX_UPLOAD_MB="1", MAX_PAGES="80")


@pytest.fixture
def other(server: LiveServer, engine: Engine, api_settings: Settings) -> Iterator[httpx.Client]:
    with tenant_client(engine, api_settings, server.url) as client:
        yield client


def _chunk_rows(engine: Engine, document_id: str) -> list[tuple[int, int, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT ordinal, page_start, page_end FROM chunks "
                "WHERE document_id = :d ORDER BY ordinal"
            ),
            {"d": document_id},
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def test_a_two_page_pdf_goes_from_upload_to_searchable(
    client: httpx.Client, engine: Engine
) -> None:
    response = upload(client, english_pdf([PAGE_ONE, PAGE_TWO]), "harbour notes.pdf")
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["document"]["filename"] == "harbour notes.pdf"
    assert body["document"]["status"] == "queued"
    assert body["document"]["pages"] == 2
    assert body["job"]["kind"] == "ingest" and body["job"]["status"] == "queued"
    job = wait_for_job(client, body["job"]["id"])
    assert job["status"] == "succeeded", job
    assert job["error"] is None and job["started_at"] and job["finished_at"]
    assert job["progress"]["stage"] == "done"
    assert job["progress"]["pages_done"] == job["progress"]["pages_total"] == 2
    document = client.get(f"/v1/files/{body['document']['id']}").json()
    assert document["status"] == "ready" and document["chunks"] >= 1
    assert len(_chunk_rows(engine, document["id"])) == document["chunks"]

    found = client.post("/v1/search", json={"query": "Where is the quartz cave?"})
    assert found.status_code == 200, found.text
    top = found.json()["results"][0]
    assert top["document_id"] == document["id"]
    assert top["filename"] == "harbour notes.pdf"
    assert top["page_start"] <= 2 <= top["page_end"]
    assert "quartz cave" in top["text"]
    assert top["score"] > 0


def test_a_persian_pdf_answers_a_persian_query_with_its_page(client: httpx.Client) -> None:
    pages = [FA_PAGE_ONE + " " + persian_filler(1, 30), persian_filler(2, 30) + " " + FA_PAGE_TWO]
    document = ingest(client, persian_pdf(pages), "روستا.pdf")
    assert document["filename"] == "روستا.pdf"
    results = client.post(
        "/v1/search", json={"query": "کشاورزان چه زمانی انار می‌چینند؟", "top_k": 3}
    ).json()["results"]
    assert results[0]["page_start"] <= 2 <= results[0]["page_end"]
    assert "کشاورزان در پاییز انار می‌چینند" in results[0]["text"]
    # Digits match whatever form they are typed in: ASCII here, Persian in the PDF.
    by_year = client.post("/v1/search", json={"query": "1350", "top_k": 1}).json()["results"]
    assert by_year[0]["page_start"] == 1 and "سال ۱۳۵۰ ساخته شد" in by_year[0]["text"]


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (b"", 422, "the file is empty"),
        (b"\x89PNG\r\n\x1a\n" + bytes(64), 415, "the file is a PNG image, not a document"),
        (encrypted_pdf(), 422, "password-protected"),
        (b"%PDF-1.7\n" + bytes(range(256)) * 16, 422, "damaged"),
        (english_pdf([filler(9, 400)])[:1500], 422, "damaged"),
        (blank_pdf(81), 422, "has 81 pages; the limit is 80"),
        (b"%PDF-1.4\n" + b"0" * (1024 * 1024 + 1), 413, "larger than the 1 MB"),
    ],
    ids=["empty", "not-pdf", "encrypted", "corrupt", "truncated", "too-many-pages", "too-big"],
)
def test_bad_uploads_are_refused_with_their_reason(
    client: httpx.Client, data: bytes, status: int, message: str
) -> None:
    response = upload(client, data, "report.pdf")
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert client.get("/v1/files").json()["items"] == []  # nothing was recorded


def test_malformed_upload_requests(client: httpx.Client) -> None:
    not_multipart = client.post(
        "/v1/files", content=b"%PDF-1.4", headers={"Content-Type": "application/pdf"}
    )
    assert not_multipart.status_code == 415
    assert "multipart/form-data" in not_multipart.json()["detail"]
    wrong_field = client.post(
        "/v1/files", files={"document": ("a.pdf", b"%PDF-1.4", "application/pdf")}
    )
    assert wrong_field.status_code == 422
    assert wrong_field.json()["field"] == "file"
    two_files = client.post(
        "/v1/files",
        files=[("file", ("a.pdf", blank_pdf(1), "application/pdf")),
               ("file", ("b.pdf", blank_pdf(2), "application/pdf"))],
    )  # fmt: skip
    assert two_files.status_code == 422 and "one file" in two_files.json()["detail"]


def test_a_scan_without_text_fails_with_a_clear_reason(client: httpx.Client) -> None:
    scan = scanned_pdf()
    response = upload(client, scan, "scan.pdf")
    assert response.status_code == 202
    job = wait_for_job(client, response.json()["job"]["id"])
    # Pictures of shapes: OCR (Tesseract, installed by `make test`) finds no words either.
    reason = "no extractable text: a scanned document in which OCR found no text either"
    assert (job["status"], job["error"]) == ("failed", reason)
    document = client.get(f"/v1/files/{job['document_id']}").json()
    assert (document["status"], document["error"]) == ("failed", reason)
    # The same bytes again try once more (a new job), rather than hand back the failure.
    again = upload(client, scan, "scan again.pdf")
    assert again.status_code == 202, again.text
    assert again.json()["document"]["id"] == document["id"]
    assert again.json()["job"]["id"] != job["id"]
    assert wait_for_job(client, again.json()["job"]["id"])["error"] == reason


def test_a_cancelled_or_stuck_ingestion_is_retried_on_request(
    client: httpx.Client, engine: Engine, api_settings: Settings
) -> None:
    pages = [f"Retry page {n}. " + filler(n, 3) for n in range(1, 7)]
    response = upload(client, costly_pdf([(page, 4_000_000) for page in pages]), "retry.pdf")
    assert response.status_code == 202, response.text
    first, document_id = response.json()["job"]["id"], response.json()["document"]["id"]
    assert client.post(f"/v1/jobs/{first}/cancel").status_code == 200
    cancelled = client.get(f"/v1/files/{document_id}").json()
    with colleague_client(engine, api_settings, client) as colleague:
        refused = colleague.post(f"/v1/files/{document_id}/retry")
    retried = client.post(f"/v1/files/{document_id}/retry")
    # Retried again while that one is under way (as if stuck): it starts over.
    restarted = client.post(f"/v1/files/{document_id}/retry")
    job = wait_for_job(client, restarted.json()["job"]["id"])
    replaced = client.get(f"/v1/jobs/{retried.json()['job']['id']}").json()
    document = client.get(f"/v1/files/{document_id}").json()
    ready = client.post(f"/v1/files/{document_id}/retry")
    missing = client.post(f"/v1/files/{uuid.uuid4()}/retry")
    malformed = client.post("/v1/files/not-an-id/retry")

    assert (cancelled["status"], cancelled["error"]) == ("failed", "ingestion was cancelled")
    assert refused.status_code == 403
    assert "only the member who uploaded a document, or an admin" in refused.json()["detail"]
    assert retried.status_code == restarted.status_code == 202, retried.text
    assert retried.json()["document"]["status"] == "queued"
    assert len({first, retried.json()["job"]["id"], restarted.json()["job"]["id"]}) == 3
    assert (replaced["status"], replaced["error"]) == ("cancelled", "retried on request")
    assert job["status"] == "succeeded", job
    assert document["status"] == "ready" and document["pages"] == len(pages)
    rows = _chunk_rows(engine, document_id)
    assert len(rows) == len({ordinal for ordinal, _, _ in rows}) == document["chunks"]
    assert ready.status_code == 409
    assert ready.json()["detail"] == "the document is ready; there is nothing to retry"
    assert missing.status_code == malformed.status_code == 404  # a path id names nothing


def test_the_same_file_again_returns_the_existing_document(
    client: httpx.Client, other: httpx.Client, engine: Engine
) -> None:
    data = english_pdf([PAGE_ONE + " " + filler(3, 5)])
    first = ingest(client, data, "first.pdf")
    again = upload(client, data, "renamed copy.pdf")
    assert again.status_code == 200, again.text
    assert again.json()["document"]["id"] == first["id"]
    assert again.json()["document"]["filename"] == "first.pdf"
    assert again.json()["job"]["status"] == "succeeded"
    with engine.connect() as conn:
        jobs = conn.execute(
            text("SELECT count(*) FROM jobs WHERE document_id = :d"), {"d": first["id"]}
        )
        assert jobs.scalar() == 1
    elsewhere = upload(other, data, "first.pdf")
    assert elsewhere.status_code == 202
    assert elsewhere.json()["document"]["id"] != first["id"]


def test_delete_removes_the_document_its_chunks_and_bytes(
    client: httpx.Client, engine: Engine
) -> None:
    document = ingest(client, english_pdf([PAGE_TWO, PAGE_ONE]))
    assert client.delete(f"/v1/files/{document['id']}").status_code == 204
    assert client.get(f"/v1/files/{document['id']}").status_code == 404
    assert client.delete(f"/v1/files/{document['id']}").status_code == 404
    assert _chunk_rows(engine, document["id"]) == []
    with engine.connect() as conn:
        blobs = conn.execute(text("SELECT count(*) FROM document_blobs WHERE document_id = :d"),
                             {"d": document["id"]})  # fmt: skip
        assert blobs.scalar() == 0
    assert client.post("/v1/search", json={"query": "quartz cave"}).json()["results"] == []


def test_deleting_during_ingestion_stops_it_without_leaving_chunks(
    client: httpx.Client, engine: Engine
) -> None:
    response = upload(client, english_pdf([filler(n, 20) for n in range(70)]), "long.pdf")
    assert response.status_code == 202
    job_id, document_id = response.json()["job"]["id"], response.json()["document"]["id"]
    running = wait_for_job(client, job_id, until=("running", "succeeded", "failed"))
    assert running["status"] == "running", running
    assert client.delete(f"/v1/files/{document_id}").status_code == 204
    job = wait_for_job(client, job_id)
    assert (job["status"], job["error"]) == ("cancelled", "the document was deleted")
    assert _chunk_rows(engine, document_id) == []


def test_another_tenant_sees_nothing(client: httpx.Client, other: httpx.Client) -> None:
    response = upload(client, english_pdf([PAGE_ONE]), "mine.pdf")
    job_id = response.json()["job"]["id"]
    document = wait_for_job(client, job_id)
    document_id = document["document_id"]
    assert other.get(f"/v1/files/{document_id}").status_code == 404
    assert other.get(f"/v1/jobs/{job_id}").status_code == 404
    assert other.delete(f"/v1/files/{document_id}").status_code == 404
    assert other.get("/v1/files").json()["items"] == []
    assert (
        other.post("/v1/search", json={"query": "copper lantern harbour"}).json()["results"] == []
    )
    filtered = other.post("/v1/search", json={"query": "lantern", "document_ids": [document_id]})
    assert filtered.status_code == 422 and filtered.json()["field"] == "document_ids"
    assert client.get(f"/v1/files/{document_id}").status_code == 200


def test_listing_is_paginated_newest_first(client: httpx.Client) -> None:
    ids = [upload(client, blank_pdf(n), f"{n}.pdf").json()["document"]["id"] for n in (1, 2, 3)]
    first = client.get("/v1/files", params={"limit": 2}).json()
    assert [d["id"] for d in first["items"]] == ids[::-1][:2]
    assert first["items"][0]["pages"] == 3
    second = client.get("/v1/files", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [d["id"] for d in second["items"]] == [ids[0]]
    assert second["next_cursor"] is None
    bad = client.get("/v1/files", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422 and bad.json()["field"] == "cursor"
    assert client.get("/v1/files", params={"limit": 0}).status_code == 422
    assert client.get("/v1/files/not-a-uuid").status_code == 404
    assert client.get(f"/v1/jobs/{uuid.uuid4()}").status_code == 404


def test_search_input_is_checked_and_filters_hold(client: httpx.Client) -> None:
    first = ingest(client, english_pdf([PAGE_ONE]), "one.pdf")
    second = ingest(client, english_pdf([PAGE_TWO]), "two.pdf")
    for body, field in [
        ({"query": ""}, "query"),
        ({"query": "\u200b  "}, "query"),
        ({"query": "x", "top_k": 0}, "top_k"),
        ({"query": "x", "top_k": 51}, "top_k"),
        ({"query": "x", "document_ids": ["nope"]}, "document_ids"),
        ({"query": "x", "document_ids": [str(uuid.uuid4())]}, "document_ids"),
        ({"top_k": 3}, "query"),
    ]:
        response = client.post("/v1/search", json=body)
        assert response.status_code == 422, (body, response.text)
        assert field in response.json()["field"], (body, response.json())
    only_second = client.post(
        "/v1/search", json={"query": "copper lantern harbour", "document_ids": [second["id"]]}
    ).json()["results"]
    assert only_second and {r["document_id"] for r in only_second} == {second["id"]}
    one = client.post("/v1/search", json={"query": "lantern", "top_k": 1}).json()["results"]
    assert len(one) == 1 and one[0]["document_id"] == first["id"]
