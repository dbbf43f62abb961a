"""The pipeline's pure functions on real PDFs: extraction, normalisation, chunking, embedding."""

from __future__ import annotations

import io
import itertools
import threading
import time
from pathlib import Path

import numpy as np
import pypdf
import pytest

from pipeline.chunking import chunk_pages, count_tokens
from pipeline.embedding import FairLock, LocalE5Embedder
from pipeline.errors import (
    CorruptDocument,
    CorruptPdf,
    EmptyFile,
    EncryptedPdf,
    NoExtractableText,
    NoPages,
    PermanentError,
    TooManyPages,
    UnsupportedFormat,
)
from pipeline.ingest import ChunkingOptions, IngestProgress, ingest_pdf, normalised_pages
from pipeline.margins import strip_running_lines
from pipeline.normalise import normalise_text
from pipeline.ocr import broken_text_layer
from pipeline.pdf import PageText
from pipeline.pdf_isolation import ReadLimits, count_pages, read_page_range, read_pdf
from pipeline.sentences import split_sentences
from standins.documents import (
    blank_pdf,
    broken_font_persian_pdf,
    encrypted_pdf,
    english_pdf,
    filler,
    persian_pdf,
    scanned_pdf,
)

PERSIAN = "پایتون یک زبان برنامه‌نویسی است. کتابخانه‌های زیادی دارد و ۱۲۳ ویژگی."


def _write(tmp_path: Path, data: bytes, name: str = "doc.pdf") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_persian_words_come_out_separated_and_in_reading_order(tmp_path: Path) -> None:
    path = _write(tmp_path, persian_pdf([PERSIAN + "\n\nپاراگراف دوم درباره‌ی یادگیری است."]))
    with read_pdf(path, ReadLimits(10)) as source:
        (page,) = list(normalised_pages(source.pages()))
    assert page.number == 1
    assert page.text.split() == (PERSIAN + " پاراگراف دوم درباره‌ی یادگیری است.").split()
    # pypdf, for contrast, loses the word spaces this test depends on.
    pypdf_text = pypdf.PdfReader(path).pages[0].extract_text()
    assert normalise_text(pypdf_text).split() != page.text.split()


def test_english_pages_keep_their_numbers(tmp_path: Path) -> None:
    path = _write(tmp_path, english_pdf(["First page. Alpha.", "Second page. Beta."]))
    with read_pdf(path, ReadLimits(10)) as source:
        pages = list(normalised_pages(source.pages()))
    assert [(p.number, p.text) for p in pages] == [
        (1, "First page. Alpha."),
        (2, "Second page. Beta."),
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("\ufb8a\ufeae\ufeed\ufeea", "ژروه"),  # presentation forms fold to letters (NFKC)
        ("علي كتاب", "علی کتاب"),  # Arabic yeh and kaf become Persian
        ("سال ١٣٩٩ و ۱۴۰۰ و 2021", "سال ۱۳۹۹ و ۱۴۰۰ و 2021"),  # digits stay, one Persian form
        ("می\u200cخواهم", "می\u200cخواهم"),  # the zero-width non-joiner stays
        ("می \u200c خواهم", "می\u200cخواهم"),  # ... without stray spaces around it
        ("کـــتاب مَدرِسه", "کتاب مدرسه"),  # tatweel and short vowels go
        ("bell\x07 and\u200b\ufeff tab\there", "bell and tab here"),  # controls, invisibles
        ("exam-\nple of hyphen-\nation", "example of hyphenation"),  # broken hyphenation
        ("New-\nYork", "New-\nYork".replace("\n", " ")),  # a capital after the break: kept
        ("one\r\ntwo   three\n\n\nnext  paragraph", "one two three\n\nnext paragraph"),
    ],
)
def test_normalisation(raw: str, expected: str) -> None:
    assert normalise_text(raw) == expected


def test_chunks_stay_within_size_overlap_and_keep_page_spans() -> None:
    pages = [PageText(n, filler(n, 12) + "\n\n" + filler(100 + n, 9)) for n in range(1, 9)]
    chunks = list(chunk_pages(pages, size=120, overlap=30))
    assert len(chunks) > 8
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.token_count == count_tokens(chunk.text)
        assert chunk.token_count <= 120
        assert 1 <= chunk.page_start <= chunk.page_end <= 8
        assert chunk.text.endswith(".")  # cut at sentence ends
    for before, after in itertools.pairwise(chunks):
        first_sentence = after.text.split(". ")[0]
        assert first_sentence in before.text, "neighbours share their boundary sentence"
        assert after.page_start >= before.page_start
    spanning = [c for c in chunks if c.page_end > c.page_start]
    assert spanning, "text flows across page boundaries"
    every_sentence = {s for p in pages for s in p.text.replace("\n\n", " ").split(". ")}
    covered = " ".join(c.text for c in chunks)
    assert all(s.rstrip(".") in covered for s in every_sentence)


def test_a_sentence_longer_than_a_chunk_is_cut_between_words() -> None:
    long_sentence = " ".join(["token"] * 500) + "."
    chunks = list(chunk_pages([PageText(3, long_sentence)], size=64, overlap=8))
    assert len(chunks) > 7
    assert all(c.token_count <= 64 and c.page_start == c.page_end == 3 for c in chunks)
    assert all(set(c.text.rstrip(".").split()) == {"token"} for c in chunks)


def test_chunking_rejects_an_overlap_as_large_as_the_chunk() -> None:
    with pytest.raises(ValueError, match="overlap"):
        list(chunk_pages([PageText(1, "x.")], size=10, overlap=10))


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", EmptyFile),
        (b"\x00\x01 binary, with a .pdf name", UnsupportedFormat),
        (b"PK\x03\x04 a broken zip named .docx", CorruptDocument),
        (b"%PDF-1.7\n" + bytes(range(256)) * 8, CorruptPdf),
    ],
)
def test_files_that_are_not_usable_pdfs(tmp_path: Path, data: bytes, error: type) -> None:
    with pytest.raises(error):
        count_pages(_write(tmp_path, data), ReadLimits(10))


def test_encrypted_truncated_empty_and_long_pdfs_are_refused(tmp_path: Path) -> None:
    with pytest.raises(EncryptedPdf, match="password"):
        count_pages(_write(tmp_path, encrypted_pdf()), ReadLimits(10))
    truncated = english_pdf([filler(1, 40)])[:900]
    with pytest.raises(CorruptPdf):
        count_pages(_write(tmp_path, truncated), ReadLimits(10))
    empty = io.BytesIO()
    pypdf.PdfWriter().write(empty)
    with pytest.raises(NoPages):
        count_pages(_write(tmp_path, empty.getvalue()), ReadLimits(10))
    with pytest.raises(TooManyPages, match="has 6 pages; the limit is 5"):
        count_pages(_write(tmp_path, blank_pdf(6)), ReadLimits(5))
    assert count_pages(_write(tmp_path, blank_pdf(5)), ReadLimits(5)) == 5


def test_a_scan_without_text_is_a_permanent_error(tmp_path: Path) -> None:
    path = _write(tmp_path, scanned_pdf())
    with pytest.raises(NoExtractableText, match="scanned PDF") as caught:
        ingest_pdf(path, LocalE5Embedder(), ChunkingOptions(200, 20, ReadLimits(10)))
    assert isinstance(caught.value, PermanentError)


def test_ingest_pdf_chunks_embeds_and_reports_progress(tmp_path: Path) -> None:
    path = _write(tmp_path, english_pdf([filler(n, 25) for n in range(3)]))
    seen: list[IngestProgress] = []
    result = ingest_pdf(
        path, LocalE5Embedder(), ChunkingOptions(100, 10, ReadLimits(10), 4), seen.append
    )
    assert result.page_count == 3
    assert result.vectors.shape == (len(result.chunks), 384)
    assert np.allclose(np.linalg.norm(result.vectors, axis=1), 1, atol=1e-3)
    assert result.embedding_tokens == sum(c.token_count for c in result.chunks)
    stages = [(p.stage, p.done, p.total) for p in seen]
    assert stages[:4] == [("extracting", 0, 3), ("extracting", 1, 3), ("extracting", 2, 3),
                          ("extracting", 3, 3)]  # fmt: skip
    assert stages[-1] == ("embedding", len(result.chunks), len(result.chunks))


def test_e5_query_and_passage_roles_rank_the_right_passage() -> None:
    embedder = LocalE5Embedder()
    passages = embedder.embed_passages(
        ["The cat sleeps on the warm windowsill.", "تهران پایتخت ایران است.", "Invoices are due."]
    )
    query = embedder.embed_query("پایتخت ایران کجاست؟")
    assert int(np.argmax(passages.vectors @ query.vectors[0])) == 1
    assert query.prompt_tokens == count_tokens("پایتخت ایران کجاست؟")


def test_passages_embedded_a_few_at_a_time_are_the_passages_embedded_alone() -> None:
    embedder = LocalE5Embedder()
    texts = [f"Passage {n}: " + "the harbour lantern " * (n + 1) for n in range(6)]
    together = embedder.embed_passages(texts).vectors
    alone = np.concatenate([embedder.embed_passages([text]).vectors for text in texts])
    assert together.shape == (6, LocalE5Embedder.dimension)
    assert np.allclose(together, alone, atol=1e-4)


def test_the_fair_lock_serves_threads_in_the_order_they_asked() -> None:
    """A thread that takes the lock again and again cannot keep out one that asked once."""
    lock, taken = FairLock(), []
    first_taken = threading.Event()

    def greedy() -> None:
        for _ in range(40):
            with lock:
                taken.append("greedy")
                first_taken.set()
                time.sleep(0.005)

    def once() -> None:
        first_taken.wait()
        with lock:
            taken.append("once")

    threads = [threading.Thread(target=greedy), threading.Thread(target=once)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert taken.index("once") <= 3  # served within a turn or two of asking


def test_running_headers_footers_and_page_numbers_are_recognised_and_content_kept() -> None:
    pages = [
        PageText(n, f"{n} Basics\nTeX began in {year}.\nThe body of page {n} goes on here.\n"
                    f"Prepared by: Shapour Madadpour\n- {n} -")
        for n, year in zip(range(1, 6), [1978, 1990, 1985, 1969, 2001], strict=True)
    ]  # fmt: skip
    stripped = strip_running_lines(pages)
    assert [p.text for p in stripped][1] == ("TeX began in 1990.\nThe body of page 2 goes on here.")
    # Two pages alone are too few to call a line "running"; neighbours given as context help.
    alone = strip_running_lines(pages[:2])
    assert "Prepared by" in alone[0].text and "- 1 -" not in alone[0].text
    helped = strip_running_lines(pages[:2], context=pages[2:])
    assert all("Prepared by" not in p.text and "Basics" not in p.text for p in helped)
    # A line that repeats inside the pages, not at their edges, is content.
    inner = [PageText(n, f"Intro {n}\nOne {n}.\nSee the manual.\nTwo {n}.\nEnd {n}.")
             for n in range(1, 5)]  # fmt: skip
    assert all("See the manual." in p.text for p in strip_running_lines(inner))


def test_sentences_end_where_people_end_them_and_code_stays_whole() -> None:
    text = normalise_text(
        "Use a font, e.g. Times, for the body. D. E. Knuth wrote TeX in 1978. Version 2.5 is "
        "out.\n\\DeclareFixedFont{\\picturechar}{OT1}{cmr}{m}{n}{5}\nIt selects a small dot. "
        "آیا این درست است؟ بله."
    )
    assert split_sentences(text) == [
        "Use a font, e.g. Times, for the body.",
        "D. E. Knuth wrote TeX in 1978.",
        "Version 2.5 is out.",
        "\\DeclareFixedFont{\\picturechar}{OT1}{cmr}{m}{n}{5}",
        "It selects a small dot.",
        "آیا این درست است؟",
        "بله.",
    ]
    code = "\\DeclareFixedFont{\\picturechar}{OT1}{cmr}{m}{n}{5}"
    pages = [PageText(1, "Words before. " * 30 + "\n" + code + "\nWords after. " * 30)]
    chunks = list(chunk_pages([PageText(1, normalise_text(pages[0].text))], 64, 8))
    assert any(code in c.text for c in chunks)
    assert all(c.token_count == count_tokens(c.text) <= 64 for c in chunks)


def test_a_text_layer_of_a_broken_persian_font_is_recognised() -> None:
    # As Persian-bib-userguide.pdf (Debian's texlive-lang-arabic) stores it: ک as Έ, ی as ͳ.
    broken = "مراج  ارجاع داده شده در قسمت کتاب نامه مͳ آیند. یΈ فایل bib شامل چیست؟ " * 3
    clean = "مراجع ارجاع داده شده در قسمت کتاب‌نامه می‌آیند. یک فایل bib شامل چیست؟ " * 3
    math = "زاویه‌ی α برابر با β است و مقدار π در فرمول می‌آید. " * 3  # Greek on its own
    assert broken_text_layer(broken)
    assert not broken_text_layer(clean) and not broken_text_layer(math)
    assert not broken_text_layer("Ωmega and αlpha in English words are not Persian ones.")


def test_with_ocr_off_broken_and_textless_pages_are_indexed_flagged_with_the_reason(
    tmp_path: Path,
) -> None:
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(
        broken_font_persian_pdf(["کتابخانه‌ی کوچک روستا یک گلدان بزرگ دارد و کودکان کتاب می‌خوانند."])
    )
    [page] = read_page_range(broken, ReadLimits(10), 1, 1)
    assert isinstance(page, PageText) and page.source == "text_layer" and page.flagged
    assert page.note is not None and "broken font" in page.note and "OCR is off" in page.note
    assert "Έ" in page.text  # kept as it is: the best there is without OCR

    scan = tmp_path / "scan.pdf"
    scan.write_bytes(scanned_pdf(1))
    [page] = read_page_range(scan, ReadLimits(10), 1, 1)
    assert isinstance(page, PageText) and page.flagged
    assert page.note is not None and "no text layer" in page.note and "tesseract-ocr" in page.note

    clean = tmp_path / "clean.pdf"
    clean.write_bytes(english_pdf([filler(1, 5)]))
    [page] = read_page_range(clean, ReadLimits(10), 1, 1)
    assert isinstance(page, PageText) and not page.flagged and page.note is None


def test_chunks_never_span_two_sections_and_name_theirs() -> None:
    pages = [
        PageText(1, "Intro text. " * 5, source="section", section=None),
        PageText(
            2,
            "Winter hours\n\nThe ferry leaves at seven. " * 3,
            source="section",
            section="Winter hours",
        ),
        PageText(
            3, "More about the ferry in winter. " * 3, source="section", section="Winter hours"
        ),
    ]
    chunks = list(chunk_pages(pages, 200, 20))
    assert [(c.section, c.page_start, c.page_end) for c in chunks] == [
        (None, 1, 1),
        ("Winter hours", 2, 3),
    ]
    assert [c.ordinal for c in chunks] == [0, 1]
