"""Documents as people have them, through the HTTP API and a real worker: Word, Markdown, HTML
and plain text are found by search; files that only look like documents fail with a sentence.
And every format is read by the bounded reading child in the installed environment, with no
service: a reader's dependency missing from the install fails here, not in a user's upload."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import get_args

import docx
import httpx
import pytest
from sqlalchemy import Engine

from core.settings import Settings
from pipeline.formats import Format, sniff
from pipeline.pdf import PageText
from pipeline.pdf_isolation import ReadLimits, read_pdf
from standins.chat_client import ask, read_stream
from standins.documents import broken_font_persian_pdf, english_pdf, persian_pdf, scan_of
from tests.ingest_helpers import colleague_client, ingest, tenant_client, upload, wait_for_job
from tests.stack import LiveServer

ARTICLE = """<!doctype html>
<html><head><title>Harbour guide</title><style>body {{ color: red }}</style>
<script>window.tracking = "SECRET-TRACKER-CODE";</script></head>
<body>
<nav><a href="/">Home</a> <a href="/shop">Shop the GIFTSHOP-MENU-ENTRY</a></nav>
<main><article>
<h1>The harbour lantern</h1>
<p>The copper lantern of the harbour is lit at dusk by the keeper, who climbs the
eighty-two steps of the old tower with a can of whale oil every single evening.</p>
<h2>Its oil</h2>
<p>The keeper refills the lantern with whale oil on Mondays, and the harbour master checks
the wick on the first day of each month, writing it in the tower's brass-bound ledger.</p>
<p>{filler}</p>
</article></main>
<footer>Copyright FOOTER-LEGAL-NOTICE 2024</footer>
</body></html>
"""
FILLER = " ".join(["The tower has a spiral stair and a small window facing west."] * 8)
MARKDOWN = "# Bakery notes\n\nThe sourdough rests twelve hours in the cold cellar.\n"
PLAIN = b"The glacier cave is reached by climbers in August."


def _docx() -> bytes:
    document = docx.Document()
    document.add_heading("راهنمای فانوس بندر", level=1)
    document.add_paragraph("فانوس مسی بندر را نگهبان هر شب هنگام غروب با روغن نهنگ روشن می‌کند.")
    document.add_heading("Winter hours", level=2)
    document.add_paragraph("In winter the ferry to the quartz island leaves at seven sharp.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _found(client: httpx.Client, query: str, document_id: str) -> dict[str, object]:
    results = client.post("/v1/search", json={"query": query, "top_k": 3}).json()["results"]
    assert results and results[0]["document_id"] == document_id, (query, results)
    first: dict[str, object] = results[0]
    return first


def test_word_markdown_html_and_text_are_read_and_found(client: httpx.Client) -> None:
    word = ingest(client, _docx(), "guide.docx")
    assert word["status"] == "ready" and word["pages"] == 2, word  # one "page" per section
    persian = _found(client, "فانوس مسی را کی روشن می‌کنند؟", word["id"])
    assert "راهنمای فانوس بندر" in str(persian["text"])  # the section's heading comes along
    winter = _found(client, "When does the ferry to the quartz island leave in winter?", word["id"])
    assert winter["page_end"] == 2 and "Winter hours" in str(winter["text"])
    assert winter["section"] == "Winter hours"  # citations name the section
    report = client.get(f"/v1/files/{word['id']}").json()["page_report"]
    assert report["sections"] == {"count": 2, "pages": [1, 2]}, report
    assert report["text_layer"]["count"] == report["ocr"]["count"] == 0
    second = client.get(f"/v1/files/{word['id']}/pages/2").json()
    assert second["source"] == "section" and second["section"] == "Winter hours"
    assert "quartz island" in second["text"] and not second["flagged"]

    answer = read_stream(client, ask(client, "When does the ferry leave in winter?")["stream_url"])
    cited = {c["page_start"]: c for c in answer.last("citations")}
    assert cited[2]["section"] == "Winter hours", cited

    notes = ingest(client, MARKDOWN.encode(), "notes.md")
    assert "Bakery notes" in str(
        _found(client, "How long does the sourdough rest?", notes["id"])["text"]
    )

    plain = ingest(client, PLAIN, "x.txt")
    _found(client, "When do climbers reach the glacier cave?", plain["id"])

    page = ingest(client, ARTICLE.format(filler=FILLER).encode(), "guide.html")
    _found(client, "When is the lantern refilled with whale oil?", page["id"])
    results = client.post("/v1/search", json={"query": "whale oil lantern", "top_k": 5}).json()
    texts = [result["text"] for result in results["results"]]
    [oil] = [result for result in results["results"] if "Mondays" in result["text"]]
    assert oil["section"] == "Its oil" and str(oil["text"]).startswith("Its oil"), oil
    for noise in ("SECRET-TRACKER-CODE", "GIFTSHOP-MENU-ENTRY", "FOOTER-LEGAL-NOTICE", "color"):
        assert not any(noise in text for text in texts)


# A small real document of each format DocuChat reads, and words its text must hold.
SAMPLES: dict[Format, tuple[Callable[[], bytes], str]] = {
    "pdf": (lambda: english_pdf(["The keeper trims the wick at dawn."]), "trims the wick"),
    "docx": (_docx, "quartz island"),
    "html": (lambda: ARTICLE.format(filler=FILLER).encode(), "whale oil on Mondays"),
    "markdown": (MARKDOWN.encode, "sourdough rests"),
    "text": (lambda: PLAIN, "glacier cave"),
}


def test_every_format_has_a_sample() -> None:
    assert sorted(SAMPLES) == sorted(get_args(Format))


@pytest.mark.parametrize("kind", SAMPLES)
def test_every_format_is_read_by_the_reading_child(tmp_path: Path, kind: Format) -> None:
    make, expected = SAMPLES[kind]
    path = tmp_path / "document"
    path.write_bytes(make())
    assert sniff(path) == kind
    with read_pdf(path, ReadLimits(max_pages=10)) as source:  # an ImportError in it fails here
        pages = [page for page in source.pages() if isinstance(page, PageText)]
    assert expected in " ".join(page.text for page in pages)


@pytest.mark.parametrize(
    ("data", "name", "status", "sentence"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(200), "scan.pdf", 415, "the file is a PNG image"),
        (b"PK\x03\x04" + b"junk" * 100, "report.docx", 422, "is not a valid one"),
        (b"\x00\x01\x02\x03" * 64, "data.txt", 415, "not a PDF, a Word document or text"),
    ],
    ids=["image-named-pdf", "docx-of-junk", "binary"],
)
def test_files_that_only_look_like_documents_fail_with_a_sentence(
    client: httpx.Client, data: bytes, name: str, status: int, sentence: str
) -> None:
    response = upload(client, data, name)
    assert response.status_code == status, response.text
    assert sentence in response.json()["detail"]


def test_html_of_20_mb_of_nested_tags_fails_with_a_sentence(
    client: httpx.Client, api_settings: Settings
) -> None:
    levels = 20 * 1024 * 1024 // len(b"<div></div>")  # 20 MB, within the default upload limit
    nested = b"<html><body>" + b"<div>" * levels + b"</div>" * levels + b"</body></html>"
    assert len(nested) >= 20 * 1024 * 1024 and api_settings.max_upload_mb == 25
    response = upload(client, nested, "deep.html")
    if response.status_code == 202:  # read in the worker: the job fails with the sentence
        job = wait_for_job(client, response.json()["job"]["id"])
        assert job["status"] == "failed" and "no extractable text" in job["error"]
    else:
        assert response.status_code == 422
        assert "no extractable text" in response.json()["detail"]


def test_a_scan_is_read_by_ocr_and_found_by_a_line_of_each_page(client: httpx.Client) -> None:
    english = "The lighthouse keeper lights the great lamp at dusk and trims the wick at dawn."
    persian = "کتابخانه‌ی مرکزی شهر در سال ۱۳۵۰ ساخته شد و هزاران کتاب فارسی دارد."
    both = _merged_scan([scan_of(english_pdf([english])), scan_of(persian_pdf([persian]))])
    document = ingest(client, both, "scan.pdf")
    assert document["status"] == "ready" and document["pages"] == 2
    first = _found(client, "When does the lighthouse keeper light the lamp?", document["id"])
    assert first["page_start"] == 1 and "lighthouse keeper" in str(first["text"])
    second = _found(client, "کتابخانه‌ی مرکزی در چه سالی ساخته شد؟", document["id"])
    assert second["page_end"] == 2 and "ساخته شد" in str(second["text"])  # OCR read Persian
    report = client.get(f"/v1/files/{document['id']}").json()["page_report"]
    assert [note["page"] for note in report["ocr"]["pages"]] == [1, 2], report
    assert "no text layer" in report["ocr"]["pages"][0]["reason"]
    assert report["flagged"]["count"] == report["text_layer"]["count"] == 0  # a scan is normal


GARDEN = (
    "کتابخانه‌ی کوچک روستا یک گلدان بزرگ دارد که کودکان هر روز کنار آن کتاب می‌خوانند. "
    "نگهبان پیر کتابخانه گل‌های یاس را در بهار کنار پنجره می‌کارد."
)


def test_a_broken_persian_font_is_flagged_and_read_by_ocr(
    client: httpx.Client, engine: Engine, api_settings: Settings, server: LiveServer
) -> None:
    document = ingest(client, broken_font_persian_pdf([GARDEN]), "garden.pdf")
    assert document["status"] == "ready", document
    report = client.get(f"/v1/files/{document['id']}").json()["page_report"]
    assert report["ocr"]["count"] == 1 and report["text_layer"]["count"] == 0, report
    [flag] = report["flagged"]["pages"]
    assert flag["page"] == 1 and "broken font" in flag["reason"], flag
    assert "read by OCR instead" in flag["reason"]

    page = client.get(f"/v1/files/{document['id']}/pages/1").json()
    assert page["source"] == "ocr" and page["flagged"], page
    assert not re.search(r"[\u0370-\u03ff\u2c80-\u2cff]", page["text"])  # no Greek, no Coptic
    # Words the broken map spelt wrongly (with ک, ی or گ), as OCR reads them from the glyphs.
    for word in ("کوچک", "یک", "بزرگ", "کودکان", "گل‌های", "یاس"):
        assert word in page["text"], (word, page["text"])
    _found(client, "گلدان بزرگ روستا و کودکان", document["id"])

    missing = client.get(f"/v1/files/{document['id']}/pages/2")
    assert missing.status_code == 404 and "its last page is 1" in missing.json()["detail"]
    bad = client.get(f"/v1/files/{document['id']}/pages/first")
    assert bad.status_code == 422 and "a page number is a whole number" in bad.json()["detail"]
    with colleague_client(engine, api_settings, client) as colleague:  # same tenant: may read
        assert colleague.get(f"/v1/files/{document['id']}/pages/1").status_code == 200
    with tenant_client(engine, api_settings, server.url) as stranger:  # another tenant: no such
        assert stranger.get(f"/v1/files/{document['id']}/pages/1").status_code == 404


def _merged_scan(parts: list[bytes]) -> bytes:
    import pypdfium2 as pdfium

    merged = pdfium.PdfDocument.new()
    for part in parts:
        merged.import_pages(pdfium.PdfDocument(part))
    out = io.BytesIO()
    merged.save(out)
    return out.getvalue()
