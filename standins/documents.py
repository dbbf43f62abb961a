"""Real PDFs for the tests and benches, written by fpdf2; Persian is shaped by HarfBuzz in the
Amiri font, laid out right to left the way TeX and word processors write it. fpdf2, HarfBuzz and
Amiri come with the test tools (`pip install -e '.[test]'`), not with the service."""

from __future__ import annotations

import functools
import logging
import random
import zlib

import fontpkg_amiri
from fpdf import FPDF
from fpdf.enums import EncryptionMethod

logging.getLogger("fontTools").setLevel(logging.WARNING)

AMIRI = fontpkg_amiri.ROOT / "files" / "Amiri-Regular.ttf"


def _document() -> FPDF:
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_font("amiri", fname=str(AMIRI))
    pdf.set_font("amiri", size=12)
    return pdf


def text_pdf(pages: list[str], *, rtl: bool = False) -> bytes:
    """One page per string (longer strings flow onto more pages)."""
    pdf = _document()
    if rtl:
        pdf.set_text_shaping(
            use_shaping_engine=True, direction="rtl", script="arab", language="fas"
        )
    for text in pages:
        pdf.add_page()
        for paragraph in text.split("\n\n"):
            pdf.multi_cell(0, 7, paragraph, align="R" if rtl else "L")
            pdf.ln(4)
    return bytes(pdf.output())


def english_pdf(pages: list[str]) -> bytes:
    return text_pdf(pages)


def persian_pdf(pages: list[str]) -> bytes:
    return text_pdf(pages, rtl=True)


# A broken Persian font, as real PDFs have them: its glyphs draw ک, ی and گ, but its ToUnicode
# map says they are Έ (Greek), ͳ (Greek) and Ⲁ (Coptic), so the text layer reads "یΈ" for "یک".
BROKEN_MAP = {b"<06A9>": b"<0388>", b"<06CC>": b"<0373>", b"<06AF>": b"<2C80>"}


def broken_font_persian_pdf(pages: list[str]) -> bytes:
    """Persian pages that look right but whose text layer maps ک, ی and گ wrongly."""
    pdf = _document()
    pdf.set_compression(False)  # the ToUnicode map must be plain to be altered
    pdf.set_text_shaping(use_shaping_engine=True, direction="rtl", script="arab", language="fas")
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 7, text, align="R")
    data = bytes(pdf.output())
    start = data.index(b"beginbfchar")
    end = data.index(b"endbfchar", start)
    cmap = data[start:end]
    for right, wrong in BROKEN_MAP.items():  # same length: the stream's /Length holds
        cmap = cmap.replace(b"> " + right, b"> " + wrong)
    return data[:start] + cmap + data[end:]


def encrypted_pdf(text: str = "secret report") -> bytes:
    pdf = _document()
    pdf.set_encryption(
        owner_password="owner", user_password="user", encryption_method=EncryptionMethod.RC4
    )
    pdf.add_page()
    pdf.multi_cell(0, 7, text)
    return bytes(pdf.output())


def scanned_pdf(pages: int = 2) -> bytes:
    """Pages of drawn shapes and no text at all, like a scan without OCR."""
    pdf = _document()
    rng = random.Random(7)
    for _ in range(pages):
        pdf.add_page()
        for _ in range(40):
            pdf.set_fill_color(rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255))
            pdf.rect(rng.uniform(10, 150), rng.uniform(10, 250), 40, 6, style="F")
    return bytes(pdf.output())


def blank_pdf(pages: int) -> bytes:
    pdf = _document()
    for _ in range(pages):
        pdf.add_page()
    return bytes(pdf.output())


WORDS = [
    "archive",
    "ledger",
    "harbour",
    "violet",
    "copper",
    "meadow",
    "lantern",
    "quartz",
    "falcon",
    "orchard",
    "glacier",
    "compass",
    "timber",
    "saffron",
    "beacon",
    "canyon",
    "marble",
    "willow",
    "ember",
    "tundra",
]


def filler(seed: int, sentences: int) -> str:
    """Deterministic English-looking prose of `sentences` sentences."""
    rng = random.Random(seed)
    return " ".join(
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 18))).capitalize() + "."
        for _ in range(sentences)
    )


PERSIAN_WORDS = [
    "دریا",
    "کوه",
    "جنگل",
    "باران",
    "خورشید",
    "ستاره",
    "کتاب",
    "دفتر",
    "قلم",
    "پنجره",
    "دیوار",
    "خیابان",
    "شهر",
    "روستا",
    "رودخانه",
    "آسمان",
    "ابر",
    "باد",
    "سنگ",
    "درخت",
    "گل",
    "برگ",
    "شاخه",
]


def persian_filler(seed: int, sentences: int) -> str:
    rng = random.Random(seed)
    return " ".join(
        " ".join(rng.choice(PERSIAN_WORDS) for _ in range(rng.randint(6, 14))) + "."
        for _ in range(sentences)
    )


def costly_pdf(pages: list[tuple[str, int]]) -> bytes:
    """A PDF of (text, operators) pages: each page holds that many cheap drawing operators
    (`0 g`, a grey fill colour) before its line of text, so reading it costs CPU in proportion
    (about 0.1 µs per operator) while the file stays small (a million operators compress to
    about 4 KB, and pages with as many share one stream). Written by hand: no PDF library
    writes a page like this."""
    objects: list[bytes] = []

    def add(body: bytes) -> int:
        objects.append(body)
        return len(objects)

    def stream(data: bytes) -> int:
        return add(b"<< /Length %d /Filter /FlateDecode >>\nstream\n%s\nendstream" % (
            len(data), data))  # fmt: skip

    font = add(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    drawings = {ops: stream(_drawing(ops)) for ops in sorted({ops for _, ops in pages if ops})}
    contents = []
    for text, ops in pages:
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        line = b"BT /F1 11 Tf 40 780 Td (" + escaped.encode("latin-1") + b") Tj ET\n"
        parts = ([drawings[ops]] if ops else []) + [stream(zlib.compress(line))]
        contents.append(b"[" + b" ".join(b"%d 0 R" % part for part in parts) + b"]")
    tree = len(objects) + len(pages) + 1
    kids = [
        add(
            b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] /Contents %s "
            b"/Resources << /Font << /F1 %d 0 R >> >> >>" % (tree, content, font)
        )
        for content in contents
    ]
    listed = b" ".join(b"%d 0 R" % kid for kid in kids)
    assert add(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (listed, len(kids))) == tree
    catalog = add(b"<< /Type /Catalog /Pages %d 0 R >>" % tree)
    return pdf_of_objects(objects, root=catalog)


def pdf_of_objects(objects: list[bytes], root: int = 1) -> bytes:
    """A PDF of these numbered objects (from 1; `root` is the catalog's number), with a correct
    cross-reference table."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    trailer = (len(objects) + 1, root, xref)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % trailer
    return bytes(out)


@functools.cache
def _drawing(ops: int) -> bytes:
    """`ops` fill-colour operators, compressed a megabyte at a time (never all in memory)."""
    packer = zlib.compressobj(9)
    block = b"0 g\n" * 250_000
    whole, rest = divmod(ops, 250_000)
    data = b"".join(packer.compress(block) for _ in range(whole))
    return data + packer.compress(b"0 g\n" * rest) + packer.flush()


def scan_of(pdf: bytes, dpi: int = 300) -> bytes:
    """The pages of `pdf` as a scanner gives them: each page only a picture, no text layer."""
    import pypdfium2 as pdfium

    source = pdfium.PdfDocument(pdf)
    scan = FPDF(format="A4")
    try:
        for page in source:
            picture = page.render(scale=dpi / 72, grayscale=True).to_pil()
            scan.add_page()
            scan.image(picture, x=0, y=0, w=scan.w, h=scan.h)
    finally:
        source.close()
    return bytes(scan.output())
