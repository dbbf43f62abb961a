"""What a reader meets through the HTTP API: no running headers in what was stored, an exact
phrase finds its page, the offline answer quotes the sentence that carries the fact, and a
question the documents do not cover is answered as such."""

from __future__ import annotations

import httpx

from pipeline.extractive import HEADER, NOT_COVERED
from standins.chat_client import ask, read_stream
from standins.documents import english_pdf, filler, persian_filler, persian_pdf
from tests.ingest_helpers import ingest

HEADER_LINE = "Harbour Authority Handbook, second edition"
FOOTER_LINE = "Prepared by the Port Office of Lisbon"


def _handbook_page(n: int, body: str) -> str:
    """A page as PDFs print them: running header, body, running footer and page number."""
    return f"{HEADER_LINE}\n\n{body}\n\n{FOOTER_LINE}\n\n{n}"


def _search(client: httpx.Client, query: str) -> list[dict[str, object]]:
    response = client.post("/v1/search", json={"query": query, "top_k": 6})
    assert response.status_code == 200, response.text
    results: list[dict[str, object]] = response.json()["results"]
    return results


def test_running_headers_footers_and_page_numbers_stay_out_of_chunks(
    client: httpx.Client,
) -> None:
    pages = [_handbook_page(n, filler(700 + n, 5)) for n in range(1, 7)]
    ingest(client, english_pdf(pages), "handbook.pdf")
    results = _search(client, "Harbour Authority Handbook Port Office Lisbon")
    assert results, "the handbook's pages are searchable"
    for result in results:
        text = str(result["text"])
        assert "Harbour Authority Handbook" not in text and "Port Office" not in text
    # The body of every page is there, between where header and footer were.
    first_sentence = filler(703, 5).split(".")[0]
    found = _search(client, first_sentence)[0]
    assert int(str(found["page_start"])) <= 3 <= int(str(found["page_end"]))
    assert first_sentence in str(found["text"])


def test_an_exact_phrase_finds_its_page_among_similar_ones(client: httpx.Client) -> None:
    pages = [filler(900 + n, 8) for n in range(12)]
    pages[7] += " The guide was first shown at the TeX Conference at Cork in 1990, to applause."
    document = ingest(client, english_pdf(pages), "guide.pdf")
    for query in ("TeX Conference at Cork in 1990", "Cork 1990"):
        first = _search(client, query)[0]
        assert first["document_id"] == document["id"] and first["page_start"] == 8, query


def test_a_question_that_names_a_document_searches_it_even_in_another_language(
    client: httpx.Client,
) -> None:
    """A Persian question naming an English guide by its file name ("tidewatch") finds the
    guide's page, though a Persian document shares far more of its words."""
    guide = [filler(400 + n, 6) for n in range(4)]
    guide[2] += " Tidewatch redraws its tide table every six hours and sounds a bell at high water."
    named = ingest(client, english_pdf(guide), "tidewatch-guide.pdf")
    persian = [
        persian_filler(500 + n, 8) + " جدول جزر و مد هر چند ساعت یک بار عوض می‌شود."
        for n in range(4)
    ]
    ingest(client, persian_pdf(persian), "daftar.pdf")
    question = "در tidewatch جدول جزر و مد هر چند ساعت یک بار دوباره کشیده می‌شود؟"
    first = _search(client, question)[0]
    assert first["document_id"] == named["id"]
    assert int(str(first["page_start"])) <= 3 <= int(str(first["page_end"]))


def test_a_question_the_documents_do_not_cover_is_answered_not_covered(
    client: httpx.Client,
) -> None:
    ingest(
        client,
        english_pdf([
            "The copper lantern hangs in the harbour. Fishermen light it every evening "
            "before the boats go out, and the harbour master checks its oil each Monday."
        ]),
        "lantern.pdf",
    )  # fmt: skip
    covered = read_stream(client, ask(client, "When do fishermen light the lantern?")["stream_url"])
    assert covered.text.startswith(HEADER["en"]) and "every evening" in covered.text
    for question, language in [
        ("How do I reset the device?", "en"),
        ("رمز وای‌فای مودم را چطور عوض کنم؟", "fa"),
    ]:
        answer = read_stream(client, ask(client, question)["stream_url"])
        assert answer.text == NOT_COVERED[language], question
        assert answer.names[-1] == "end"


def test_the_offline_answer_quotes_the_sentence_that_names_the_fact(client: httpx.Client) -> None:
    pages = [filler(1200 + n, 6) for n in range(4)]
    pages[2] += (
        " The printer has a duplex unit for two-sided printing. When the paper tray is empty, "
        "the printer stops printing. The display then shows error E-07 until the tray is "
        "refilled."
    )
    ingest(client, english_pdf(pages), "printer.pdf")
    question = "What error does the printer show when its tray is empty?"
    answer = read_stream(client, ask(client, question)["stream_url"])
    assert answer.text.startswith(HEADER["en"])
    assert "When the paper tray is empty, the printer stops printing." in answer.text
    assert "error E-07" in answer.text
