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
import unicodedata
from dataclasses import dataclass
from functools import cache

from pipeline.errors import PipelineError

# Fewer letters than this on a page: its text layer is missing (a scan), read it by OCR.
OCR_MIN_LETTERS = 20
# A text layer whose font maps Arabic-script letters to the wrong characters: letters of
# another script inside Arabic-script words. Persian-bib-userguide.pdf (Debian's
# texlive-lang-arabic) has ک as Έ and ی as ͳ in 10-20% of its Persian words; the Arabi user
# guide of the same package, Latin letters inside nearly every Arabic word ("العrبی"). Clean
# Persian PDFs have neither. Such a page is read by OCR instead, when OCR is on.
# Greek, Coptic, Cyrillic and private-use letters anywhere in an Arabic-script word: no
# Persian or Arabic word holds one, and no text joins one to such a word.
_ALIEN_LETTER = re.compile(
    r"[\u0370-\u03ff\u1f00-\u1fff\u2c80-\u2cff\u0400-\u052f\ue000-\uf8ff\ufffd]"
)
# One to three Latin letters between two Arabic-script letters of one word, not an acronym.
# A Latin word joined to a Persian one by a lost space or a zero-width non-joiner
# ("محیطquotationو", "فایلPDFها", "PDF‌ها") is real text.
_ARABIC_LETTER = re.compile(
    r"[\u0620-\u064a\u066e-\u06d3\u06d5\u06fa-\u06ff\ufb50-\ufdff\ufe70-\ufefc]"
)
_MARKS = "[\u064b-\u065f\u0670]*"
_ACRONYM = "(?![A-Z]{2,3}(?![a-z]))"
_LATIN_INSIDE = re.compile(
    rf"(?<={_ARABIC_LETTER.pattern}){_MARKS}{_ACRONYM}[A-Za-z\u00c0-\u024f]{{1,3}}{_MARKS}"
    rf"(?={_ARABIC_LETTER.pattern})"
)
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


def _alien_letters(word: str) -> str:
    """The letters of another script in an Arabic-script word (see _ALIEN_LETTER)."""
    return "".join(_ALIEN_LETTER.findall(word)) + "".join(_LATIN_INSIDE.findall(word))


def broken_words(text: str) -> tuple[int, int]:
    """(Arabic-script words holding a letter no such word can, Arabic-script words)."""
    words = [word for word in text.split() if _ARABIC_LETTER.search(word)]
    return sum(1 for word in words if _alien_letters(word)), len(words)


def broken_text_layer(text: str) -> bool:
    """Whether a page's text layer looks like a broken Arabic-script font (see BROKEN_SHARE)."""
    broken, words = broken_words(text)
    return broken >= BROKEN_WORDS and broken >= BROKEN_SHARE * words


def _script(letter: str) -> str:
    if "\ue000" <= letter <= "\uf8ff":
        return "private-use"
    name = unicodedata.name(letter, "")
    return name.split()[0].title() if name and letter.isalpha() else "unknown"


def why_broken(text: str) -> str:
    """A broken text layer, described for a person: how many words, which scripts."""
    broken, words = broken_words(text)
    letters = "".join(_alien_letters(word) for word in text.split() if _ARABIC_LETTER.search(word))
    scripts = sorted({_script(letter) for letter in letters if letter.strip()})
    return (
        f"its text layer looks like a broken font: {broken} of its {words} Arabic-script words "
        f"hold letters of another script ({', '.join(scripts)})"
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
