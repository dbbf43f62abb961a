"""Documents as people have them: PDF, Word (.docx), HTML, Markdown and plain text.

The format is told by the bytes, never by the name or the Content-Type a client sent: a PDF
header, a ZIP holding `word/document.xml`, HTML tags at the top, or text (UTF-8 or UTF-16
with its byte-order mark; Markdown when it has `#` headings). Images and other binaries are
refused with a sentence that says what the file is.

Formats without pages are cut into sections at their headings (Word's Heading and Title
styles, Markdown's `#` lines, HTML's h1-h6) and a section longer than `SECTION_CHARS` goes on
into the next: each such piece is a "page" for everything downstream (batches, progress,
citations' page_start/page_end), and starts with its heading, so search finds it by its title
and a reader sees which section a citation names. HTML keeps only readable text: no scripts,
styles, navigation or footers (trafilatura). Every format then goes through the same
normaliser, chunker and embedder, inside the same bounded child process as PDFs.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipeline.errors import CorruptDocument, EmptyFile, NoExtractableText, UnsupportedFormat
from pipeline.pdf import (
    HEADER_WINDOW,
    SECTION,
    PageText,
    PdfSource,
    check_page_count,
    looks_like_pdf,
    opened_pdf,
)

Format = Literal["pdf", "docx", "html", "markdown", "text"]
# How a sentence names each format ("reading this Word document needs more than ...").
FORMAT_NAMES: dict[Format, str] = {
    "pdf": "PDF",
    "docx": "Word document",
    "html": "HTML page",
    "markdown": "Markdown file",
    "text": "text file",
}

SNIFF_BYTES = 8192
SECTION_CHARS = 4000  # a "page" of a format without pages, about a printed page

_IMAGES = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"II*\x00": "a TIFF image",
    b"MM\x00*": "a TIFF image",
    b"BM": "a BMP image",
}
_HTML = re.compile(rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)[\s>]", re.I | re.S)
_HTML_TAG = re.compile(rb"<(html|head|body|div|p|h[1-6]|table|article|section)[\s>]", re.I)
_MARKDOWN_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)
READS = "DocuChat reads PDF, Word (.docx), HTML, Markdown and plain text"


def sniff(path: Path) -> Format:
    """What the file is, from its bytes; UnsupportedFormat (with what it is) otherwise."""
    with path.open("rb") as file:
        head = file.read(SNIFF_BYTES)
    if not head:
        raise EmptyFile()
    if looks_like_pdf(head[:HEADER_WINDOW]):
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return _zip_format(path)
    for signature, what in _IMAGES.items():
        if head.startswith(signature):
            raise UnsupportedFormat(f"the file is {what}, not a document: {READS}")
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        raise UnsupportedFormat(f"the file is a WebP image, not a document: {READS}")
    text = _decoded_head(head)
    if text is None:
        raise UnsupportedFormat(f"the file is not a PDF, a Word document or text: {READS}")
    raw = text.encode("utf-8", "replace")
    if _HTML.match(raw) or len(_HTML_TAG.findall(raw)) >= 3:
        return "html"
    return "markdown" if _MARKDOWN_HEADING.search(text) else "text"


def _zip_format(path: Path) -> Format:
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        raise CorruptDocument(
            "it starts like a ZIP file (as .docx files do) but is not a valid one"
        ) from None
    if "word/document.xml" in names:
        return "docx"
    raise UnsupportedFormat(f"the file is a ZIP archive, not a Word document: {READS}")


def _decoded_head(head: bytes) -> str | None:
    """The start of a text file, or None for binary data."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", "ignore")
    if b"\x00" in head:
        return None
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3:  # a character cut by the sniff window
            return head[: exc.start].decode("utf-8")
        return None


@dataclass(frozen=True)
class Section:
    heading: str | None
    text: str


class SectionedDocument:
    """A PdfSource over sections: each piece of at most SECTION_CHARS is a page."""

    def __init__(self, sections: list[Section]) -> None:
        self._pages = list(_pages(sections))
        if not self._pages:
            raise NoExtractableText("the document is empty")
        self.page_count = len(self._pages)

    def pages(self, first: int = 1, last: int | None = None) -> Iterator[PageText]:
        end = min(last or self.page_count, self.page_count)
        for number in range(max(first, 1), end + 1):
            heading, text = self._pages[number - 1]
            yield PageText(number, text, source=SECTION, section=heading)

    def close(self) -> None:
        return None


def _pages(sections: list[Section]) -> Iterator[tuple[str | None, str]]:
    """(heading, text) per page: a section's first page starts with its heading, and the
    pages it goes on into keep its name."""
    for section in sections:
        body = section.text.strip()
        if not body and not section.heading:
            continue
        heading = f"{section.heading}\n\n" if section.heading else ""
        while True:
            room = SECTION_CHARS - len(heading)
            if len(body) <= room:
                yield section.heading, heading + body
                break
            cut = body.rfind("\n\n", 0, room)
            cut = cut if cut > room // 2 else body.rfind(" ", 0, room)
            cut = cut if cut > 0 else room
            yield section.heading, heading + body[:cut]
            body = body[cut:].strip()
            heading = ""


def read_text(path: Path) -> str:
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", "replace")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CorruptDocument(
            f"its text is not UTF-8 (byte {exc.start:,} is not); save it as UTF-8 and upload again"
        ) from None


def markdown_sections(text: str) -> list[Section]:
    sections: list[Section] = []
    heading: str | None = None
    start = 0
    for match in _MARKDOWN_HEADING.finditer(text):
        sections.append(Section(heading, text[start : match.start()]))
        heading, start = match.group(2).strip(), match.end()
    sections.append(Section(heading, text[start:]))
    return sections


def docx_sections(path: Path) -> list[Section]:
    import docx  # imported late: only the reading child needs it
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise CorruptDocument(
            f"it is not a readable Word document ({type(exc).__name__})"
        ) from None
    sections: list[Section] = []
    heading: str | None = None
    lines: list[str] = []
    for paragraph in document.paragraphs:
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        text = paragraph.text.strip()
        if style.startswith(("Heading", "Title")) and text:
            sections.append(Section(heading, "\n\n".join(lines)))
            heading, lines = text, []
        elif text:
            lines.append(text)
    for table in document.tables:
        for row in table.rows:
            cells = [cell.text.strip() for cell in row.cells if cell.text.strip()]
            if cells:
                lines.append(" | ".join(dict.fromkeys(cells)))
    sections.append(Section(heading, "\n\n".join(lines)))
    return sections


def html_sections(path: Path) -> list[Section]:
    import trafilatura  # imported late: only the reading child needs it

    html = read_text(path)
    readable = trafilatura.extract(html, output_format="markdown", include_comments=False)
    if not readable or not readable.strip():
        raise NoExtractableText("the page holds no readable text once scripts and menus go")
    return markdown_sections(readable)


def open_sectioned(path: Path, kind: Format, max_pages: int) -> SectionedDocument:
    """A document without pages, cut into sections, within `max_pages` of them."""
    if kind == "docx":
        sections = docx_sections(path)
    elif kind == "html":
        sections = html_sections(path)
    elif kind == "markdown":
        sections = markdown_sections(read_text(path))
    else:
        sections = [Section(None, read_text(path))]
    document = SectionedDocument(sections)
    check_page_count(document, max_pages, FORMAT_NAMES[kind])
    return document


@contextmanager
def opened_document(path: Path, max_pages: int) -> Iterator[PdfSource]:
    """Any document DocuChat reads, open and checked (1..max_pages pages), as pages."""
    kind = sniff(path)
    if kind == "pdf":
        with opened_pdf(path, max_pages) as source:
            yield source
        return
    yield open_sectioned(path, kind, max_pages)
