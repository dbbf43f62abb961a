"""Scanned pages read with Tesseract, Persian and English together.

A PDF page whose text layer holds almost no letters, or whose letters come from a broken
font (`broken_text_layer`), is rendered by PDFium (grey, at
`OcrOptions.dpi`) and read by the `tesseract` command (Debian's tesseract-ocr and
tesseract-ocr-fas packages), inside the same bounded child process that reads the PDF, with
a time limit per page. The text it returns goes through the same normaliser as any text
layer. Without Tesseract the service runs and says at start that OCR is off; scanned pages
then fail with a sentence saying how to turn it on.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache

from pipeline.errors import PipelineError

# Fewer letters than this on a page: its text layer is missing (a scan), read it by OCR.
OCR_MIN_LETTERS = 20
# A text layer whose font maps Persian letters to the wrong characters: Greek, Coptic or
# private-use letters inside Arabic-script words (Persian-bib-userguide.pdf, in Debian's
# texlive-lang-arabic, has ک as Έ and ی as ͳ: 10-20% of its Persian words). Clean Persian
# PDFs have none. Such a page is read by OCR instead, when OCR is on.
_ARABIC_LETTER = re.compile(r"[\u0600-\u06ff]")
_ALIEN_LETTER = re.compile(r"[\u0370-\u03ff\u1f00-\u1fff\u2c80-\u2cff\ue000-\uf8ff\ufffd]")
BROKEN_WORDS = 3  # at least this many such words on a page
BROKEN_SHARE = 0.02  # and at least this share of its Arabic-script words
HOW_TO_TURN_ON = (
    "install Tesseract with its Persian data (Debian: apt-get install tesseract-ocr "
    "tesseract-ocr-fas), then restart the workers"
)


# Tesseract's OpenMP threads spin against each other (and against the other pages being read
# at the same time): one thread reads a page of Persian-bib-userguide.pdf in 2.7 s of wall time
# on 2 cores, where the default took 24 s. Parallelism comes from the workers instead.
ONE_THREAD = {"OMP_THREAD_LIMIT": "1"}


@dataclass(frozen=True)
class OcrOptions:
    languages: str = "fas+eng"
    dpi: int = 300
    page_seconds: int = 60


class OcrFailed(PipelineError):
    """Tesseract could not read a page (too slow, or it failed): the page is skipped."""


@cache
def ocr_languages() -> frozenset[str]:
    """The languages the installed Tesseract reads (none when it is not installed)."""
    if shutil.which("tesseract") is None:
        return frozenset()
    try:
        listed = subprocess.run(
            ["tesseract", "--list-langs"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(line.strip() for line in listed.splitlines()[1:] if line.strip())


def ocr_missing(options: OcrOptions) -> list[str]:
    """The languages of `options` the installed Tesseract lacks (all when it is absent)."""
    wanted = options.languages.split("+")
    return [language for language in wanted if language not in ocr_languages()]


def broken_words(text: str) -> tuple[int, int]:
    """(Arabic-script words holding a letter no Persian word can, Arabic-script words)."""
    words = [word for word in text.split() if _ARABIC_LETTER.search(word)]
    return sum(1 for word in words if _ALIEN_LETTER.search(word)), len(words)


def broken_text_layer(text: str) -> bool:
    """Whether a page's text layer looks like a broken Persian font (see BROKEN_SHARE)."""
    broken, words = broken_words(text)
    return broken >= BROKEN_WORDS and broken >= BROKEN_SHARE * words


def why_broken(text: str) -> str:
    """A broken text layer, described for a person."""
    broken, words = broken_words(text)
    return (
        f"its text layer looks like a broken font: {broken} of its {words} Persian words hold "
        "Greek, Coptic or private-use letters"
    )


def read_image(pgm: bytes, options: OcrOptions) -> str:
    """The text Tesseract reads in a greyscale image (PGM bytes)."""
    try:
        done = subprocess.run(
            ["tesseract", "stdin", "stdout", "-l", options.languages, "--dpi", str(options.dpi)],
            input=pgm,
            env=os.environ | ONE_THREAD,
            capture_output=True,
            timeout=options.page_seconds,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise OcrFailed(
            f"reading it by OCR took more than the {options.page_seconds} s a page may take "
            "(OCR_PAGE_SECONDS)"
        ) from None
    except OSError as exc:
        raise OcrFailed(f"Tesseract could not be run ({exc})") from None
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no reason"]
        raise OcrFailed(f"Tesseract failed on it: {reason[0][:200]}")
    return done.stdout.decode("utf-8", "replace")
