"""Open PDFs and read their text page by page, without ever holding every page at once.

PDFium (pypdfium2) reads the text: it keeps Persian and Arabic in logical order with word
spaces, where pypdf glues words together and emits presentation forms. pypdf only steps in for
files PDFium refuses to parse but pypdf can repair. PDFium is not thread-safe, so every call
into it holds one process-wide lock, taken per page so parallel ingestions interleave.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pypdf
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from pypdf.errors import PdfReadError

from pipeline.errors import CorruptPdf, EmptyFile, EncryptedPdf, NoPages, NotAPdf, TooManyPages

log = logging.getLogger("docuchat.pipeline")

PDFIUM_LOCK = threading.RLock()
# The PDF header may follow a little junk; PDFium looks this far for it, and so do we.
HEADER_WINDOW = 1024


# How a page's text was obtained.
TEXT_LAYER = "text_layer"  # a PDF's own text
OCR = "ocr"  # read from the rendered page by Tesseract
SECTION = "section"  # a piece of a format without pages (Word, HTML, Markdown, text)
SKIPPED = "skipped"  # left out: `note` says why


@dataclass(frozen=True)
class PageText:
    number: int  # 1-based, as people and PDF viewers count
    text: str
    source: str = TEXT_LAYER
    note: str | None = None  # why it was read as it was (why OCR; what is wrong with it)
    flagged: bool = False  # indexed, but its text may be wrong: `note` says why
    section: str | None = None  # the heading it falls under (formats without pages)


class PdfSource(Protocol):
    page_count: int

    def pages(self, first: int = 1, last: int | None = None) -> Iterator[PageText]:
        """Pages `first` to `last` (1-based, inclusive; by default to the end)."""

    def close(self) -> None: ...


def _indexes(first: int, last: int | None, count: int) -> range:
    return range(max(first, 1) - 1, min(last or count, count))


def looks_like_pdf(head: bytes) -> bool:
    """Whether the first bytes of a file carry a PDF header."""
    return b"%PDF-" in head[:HEADER_WINDOW]


class _PdfiumSource:
    def __init__(self, document: pdfium.PdfDocument) -> None:
        self._document = document
        self.page_count = len(document)

    def pages(self, first: int = 1, last: int | None = None) -> Iterator[PageText]:
        for index in _indexes(first, last, self.page_count):
            with PDFIUM_LOCK:
                page = self._document[index]
                try:
                    textpage = page.get_textpage()
                    try:
                        text = textpage.get_text_range()
                    finally:
                        textpage.close()
                finally:
                    page.close()
            yield PageText(index + 1, text)

    def render_gray(self, number: int, dpi: int) -> bytes:
        """Page `number` rendered in shades of grey at `dpi`, as a PGM image (for OCR)."""
        with PDFIUM_LOCK:
            page = self._document[number - 1]
            try:
                bitmap = page.render(scale=dpi / 72, grayscale=True)
                pixels = bitmap.to_numpy()
            finally:
                page.close()
        grey = pixels if pixels.ndim == 2 else pixels[:, :, 0]
        height, width = grey.shape
        return b"P5\n%d %d\n255\n" % (width, height) + grey.tobytes()

    def close(self) -> None:
        with PDFIUM_LOCK:
            self._document.close()


class _PypdfSource:
    def __init__(self, reader: pypdf.PdfReader) -> None:
        self._reader = reader
        self.page_count = len(reader.pages)

    def pages(self, first: int = 1, last: int | None = None) -> Iterator[PageText]:
        for index in _indexes(first, last, self.page_count):
            try:
                text = self._reader.pages[index].extract_text() or ""
            except Exception as exc:  # one broken page should not sink the document
                log.warning("pypdf could not read page %d: %s", index + 1, exc)
                text = ""
            yield PageText(index + 1, text)

    def close(self) -> None:
        self._reader.close()


def _open_with_pdfium(path: Path) -> PdfSource:
    with PDFIUM_LOCK:
        return _PdfiumSource(pdfium.PdfDocument(str(path)))


def _open_with_pypdf(path: Path, pdfium_reason: str) -> PdfSource:
    try:
        reader = pypdf.PdfReader(str(path), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise EncryptedPdf()
        source = _PypdfSource(reader)
    except (PdfReadError, ValueError, KeyError, TypeError, RecursionError, OSError) as exc:
        log.info("pypdf could not open the file either: %s", exc)
        raise CorruptPdf(pdfium_reason) from None
    log.info("PDFium refused the file (%s); reading it with pypdf", pdfium_reason)
    return source


def check_header(path: Path) -> None:
    """Refuse an empty file, or one whose bytes are not a PDF's, without parsing it."""
    with path.open("rb") as file:
        head = file.read(HEADER_WINDOW)
    if not head:
        raise EmptyFile()
    if not looks_like_pdf(head):
        raise NotAPdf()


def open_pdf(path: Path) -> PdfSource:
    """Open a PDF for reading, or raise the PermanentError that says what is wrong with it.
    This parses the file in the calling process: untrusted files go through pdf_isolation."""
    check_header(path)
    try:
        return _open_with_pdfium(path)
    except pdfium.PdfiumError as exc:
        if exc.err_code in (pdfium_c.FPDF_ERR_PASSWORD, pdfium_c.FPDF_ERR_SECURITY):
            raise EncryptedPdf() from None
        reason = str(exc).removeprefix("Failed to load document ").strip("().") or "unknown"
        return _open_with_pypdf(path, reason)


def check_page_count(source: PdfSource, max_pages: int, what: str = "PDF") -> int:
    """The page count of 1..max_pages pages; `what` names the format in the refusal."""
    if source.page_count < 1:
        raise NoPages(what)
    if source.page_count > max_pages:
        raise TooManyPages(source.page_count, max_pages, what)
    return source.page_count


@contextmanager
def opened_pdf(path: Path, max_pages: int) -> Iterator[PdfSource]:
    """An open, checked PDF (1..max_pages pages), closed when the block ends."""
    source = open_pdf(path)
    try:
        check_page_count(source, max_pages)
        yield source
    finally:
        source.close()
