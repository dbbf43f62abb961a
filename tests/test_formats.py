"""Documents as people have them, through the HTTP API and a real worker: Word, Markdown, HTML
and plain text are found by search; files that only look like documents fail with a sentence."""

from __future__ import annotations

import io

import docx
import httpx
import pytest

from tests.ingest_helpers import ingest, upload, wait_for_job
from tests.pdfs import english_pdf, persian_pdf, scan_of

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

    markdown = "# Bakery notes\n\nThe sourdough rests twelve hours in the cold cellar.\n"
    notes = ingest(client, markdown.encode(), "notes.md")
    assert "Bakery notes" in str(
        _found(client, "How long does the sourdough rest?", notes["id"])["text"]
    )

    plain = ingest(client, b"The glacier cave is reached by climbers in August.", "x.txt")
    _found(client, "When do climbers reach the glacier cave?", plain["id"])

    filler = " ".join(["The tower has a spiral stair and a small window facing west."] * 8)
    page = ingest(client, ARTICLE.format(filler=filler).encode(), "guide.html")
    oil = _found(client, "When is the lantern refilled with whale oil?", page["id"])
    text = str(oil["text"])
    assert "Mondays" in text and "Its oil" in text
    for noise in ("SECRET-TRACKER-CODE", "GIFTSHOP-MENU-ENTRY", "FOOTER-LEGAL-NOTICE", "color"):
        assert noise not in text


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


def test_html_of_nothing_but_nested_tags_fails_with_a_sentence(client: httpx.Client) -> None:
    nested = b"<html><body>" + b"<div>" * 100_000 + b"</div>" * 100_000 + b"</body></html>"
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


def _merged_scan(parts: list[bytes]) -> bytes:
    import pypdfium2 as pdfium

    merged = pdfium.PdfDocument.new()
    for part in parts:
        merged.import_pages(pdfium.PdfDocument(part))
    out = io.BytesIO()
    merged.save(out)
    return out.getvalue()
