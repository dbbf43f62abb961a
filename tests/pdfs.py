"""Real PDFs for the tests, written by fpdf2; Persian is shaped by HarfBuzz in the Amiri font,
laid out right to left the way TeX and word processors write it."""

from __future__ import annotations

import logging
import random

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
