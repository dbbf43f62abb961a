"""Hostile PDFs, written byte by byte: what an attacker uploads, not what a program makes."""

from __future__ import annotations

import zlib

from standins.documents import pdf_of_objects

FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
TEXT = b"BT /F1 12 Tf 72 720 Td (The harbour lantern is lit at dusk.) Tj ET"
PAGE = (
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
    b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R %s>>"
)


def _stream(data: bytes, compressed: bool = False) -> bytes:
    flate = b"/Filter /FlateDecode " if compressed else b""
    return b"<< /Length %d %s>>\nstream\n%s\nendstream" % (len(data), flate, data)


def one_page(
    contents: bytes = b"", *, page_extra: bytes = b"", catalog_extra: bytes = b"", kids: bytes = b""
) -> bytes:
    """One page showing `contents` (a stream object; a line of text by default)."""
    return pdf_of_objects([
        b"<< /Type /Catalog /Pages 2 0 R %s>>" % catalog_extra,
        kids or b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        PAGE % page_extra,
        contents or _stream(TEXT),
        FONT,
    ])  # fmt: skip


def random_after_header(size: int = 200_000) -> bytes:
    return b"%PDF-1.7\n" + bytes((n * 7919 + 13) % 251 for n in range(size))


def deeply_nested(depth: int = 100_000) -> bytes:
    """Arrays and dictionaries nested `depth` deep, where a recursive parser overflows."""
    arrays = b"[" * depth + b"]" * depth
    dicts = b"<< /A " * (depth // 2) + b">> " * (depth // 2)
    return one_page(page_extra=b"/Annots %s /X %s " % (arrays, dicts))


def page_count_lie() -> bytes:
    """A page tree that claims two billion pages and holds one."""
    return one_page(kids=b"<< /Type /Pages /Kids [3 0 R] /Count 2000000000 >>")


def page_tree_loop() -> bytes:
    """A page tree whose branch lists the root, and itself, among its children."""
    return pdf_of_objects([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R 6 0 R] /Count 3 >>",
        PAGE % b"",
        _stream(TEXT),
        FONT,
        b"<< /Type /Pages /Parent 2 0 R /Kids [2 0 R 6 0 R] /Count 2 >>",
    ])  # fmt: skip


def huge_page_tree(pages: int = 200_000) -> bytes:
    """One page object listed `pages` times."""
    kids = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b"3 0 R " * pages, pages)
    return one_page(kids=kids)


def decompression_bomb(inflated_mb: int) -> bytes:
    """A page whose content stream is about 1/1000 of what it inflates to (spaces)."""
    packer = zlib.compressobj(9)
    parts = [packer.compress(TEXT + b"\n")]
    block = b" " * (1 << 20)
    parts += [packer.compress(block) for _ in range(inflated_mb)]
    parts.append(packer.flush())
    return one_page(_stream(b"".join(parts), compressed=True))


def text_flood(characters: int) -> bytes:
    """One page that shows about `characters` letters of text (distinct lines, since PDFium
    drops text drawn twice over itself), compressed."""
    lines = characters // 200 + 1
    content = b"".join(
        b"BT /F1 1 Tf %d %d Td (%06d %s) Tj ET\n" % (n // 700 * 100, n % 700, n, b"w" * 192)
        for n in range(lines)
    )
    return one_page(_stream(zlib.compress(content, 9), compressed=True))


def javascript_actions() -> bytes:
    """Scripts on opening the document and the page: text readers must ignore them."""
    script = b"<< /S /JavaScript /JS (app.launchURL\\('http://example.invalid/'\\);) >>"
    return one_page(
        page_extra=b"/AA << /O %s >> " % script,
        catalog_extra=b"/OpenAction %s /Names << /JavaScript << /Names [(a) %s] >> >> "
        % (script, script),
    )
