"""Words as search and the offline answerer compare them: folded, and without the words that
carry no meaning on their own (English and Persian function words). Technical terms count
whole as well as by their words: a command (`\\section`), a file name or extension
(`report.log`, `.cfg`), a number or version (`2.5`, `v1.2.3`), a URL or an e-mail address.

Folding matches what the full-text index stores (`db/search.py`): every digit form becomes
ASCII and the zero-width non-joiner goes, so "تک‌لایو" as typed matches "تکلایو" as many PDFs
store it, and "۱۹۷۸" matches "1978".
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from pipeline.normalise import ZWNJ, normalise_text

_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789", ZWNJ)
_WORD = re.compile(r"\w+")
_CAMEL_PART = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_STOP_WORDS = (
    "a an and are as at be been but by can could did do does for from had has have how i if "
    "in into is it its may me might my no not of on or our should so such than that the "
    "their them then there these they this those to us was we were what when where which "
    "while who whom why will with would you your about also any each get got just more most "
    "other over some use used using want "
    "از این آن با به برای بر تا چه چی چیست کدام کجا کی که را در و یا است بود هست شد می "
    "های ها هم نیز دارد دارند کرد کند چرا چگونه آیا باید شود میشود میکنم کنم چطور چطوری "
    "یک ای اگر اما پس هر همه من ما شما او آنها ایشان وقتی کردن کردم شده بودن باشد"
)
STOP_WORDS = frozenset(_STOP_WORDS.split())


_TECHNICAL = re.compile(
    r"https?://\S+|www\.\S+"  # URLs
    r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # e-mail addresses
    r"|\\(?:[^\W\d_]|@)+\*?"  # commands, LaTeX's internal ones with @ too
    r"|(?<![\w.])\.[^\W\d_][\w]{0,5}(?![\w.])"  # extensions
    r"|\w+(?:[.:/_-]\w+)+"  # file names, versions, paths, identifiers with punctuation
    r"|\d+"  # numbers
    r"|[A-Za-z]*[a-z][A-Z]\w*|[A-Z]{2,}\w*|[A-Za-z]+\d\w*"  # camelCase, ACRONYMS, OT1
)


# Persian suffixes of plural, comparison, possession and the indefinite (on folded words, so
# without the zero-width non-joiner that may have stood before them).
_PERSIAN_SUFFIXES = (
    "هایی", "هایم", "هایت", "هایش", "ترین", "های", "مان", "تان", "شان", "ها", "تر", "ای", "ام",
    "اش", "ه", "ی",
)  # fmt: skip
_MIN_STEM = 3
_ARABIC_LETTER = re.compile(r"[\u0600-\u06ff]")


@functools.lru_cache(maxsize=65536)
def stem_forms(word: str) -> frozenset[str]:
    """A Persian word and what it may be without one or two inflectional suffixes: written
    without the non-joiner "برنامهای" is a program or programs, so both "برنامه" and "برنام"
    come out, and two words meet when their forms do. Other words are their only form."""
    forms = {word}
    if not _ARABIC_LETTER.match(word):
        return frozenset(forms)
    for _ in range(2):
        forms |= {
            form[: -len(suffix)]
            for form in forms
            for suffix in _PERSIAN_SUFFIXES
            if form.endswith(suffix) and len(form) - len(suffix) >= _MIN_STEM
        }
    return frozenset(forms)


def _is_plural(word: str) -> bool:
    return word.endswith("s") and not word.endswith(("ss", "us", "is"))


def fold(text: str) -> str:
    """Normalised, digits in ASCII, no zero-width non-joiner, lower case."""
    return normalise_text(text).translate(_DIGITS).lower()


def content_words(text: str) -> frozenset[str]:
    """The folded words of `text` that are not function words; an identifier written in
    camel case counts its parts too (`\\DeclareFixedFont`: declare, fixed, font), an English
    plural its singular, a technical term itself whole."""
    words = set()
    for word in _WORD.findall(normalise_text(text).translate(_DIGITS)):
        words.add(word.lower())
        parts = _CAMEL_PART.findall(word)
        if len(parts) > 1:
            words.update(part.lower() for part in parts if len(part) > 1)
    # An English plural counts as its singular too ("commands" matches "command").
    words |= {w[:-1] for w in words if len(w) > 3 and w.isascii() and w.isalpha() and _is_plural(w)}
    words |= technical_terms(text)
    # A lone Latin letter ("e" of "e.g.", "a" of a list) says nothing about the topic.
    return frozenset(w for w in words - STOP_WORDS if len(w) > 1 or w.isdigit() or not w.isascii())


def technical_terms(text: str) -> frozenset[str]:
    """The folded technical terms of `text`: what a question about a tool asks for and prose
    rarely holds (commands, names of files, numbers, identifiers, addresses)."""
    found = _TECHNICAL.findall(normalise_text(text).translate(_DIGITS))
    return frozenset(term.rstrip(".,;:!?)]}»\"'").lower() for term in found) - {""}


@dataclass(frozen=True)
class TermCounts:
    """How many of a tenant's chunks hold each of some words (folded), out of how many."""

    chunks: int = 0
    holding: Mapping[str, int] = field(default_factory=dict)

    def rarity(self, word: str) -> float | None:
        """The word's inverse document frequency, as the lexical search weighs it; None when
        it was not counted."""
        if word not in self.holding:
            return None
        held = self.holding[word]
        return math.log(1 + (self.chunks - held + 0.5) / (held + 0.5))

    def unknown(self, word: str) -> bool:
        """Counted, and in none of the tenant's chunks."""
        return self.holding.get(word) == 0
