"""Words as search and the offline answerer compare them: folded, and without the words that
carry no meaning on their own (English and Persian function words).

Folding matches what the full-text index stores (`db/search.py`): every digit form becomes
ASCII and the zero-width non-joiner goes, so "تک‌لایو" as typed matches "تکلایو" as many PDFs
store it, and "۱۹۷۸" matches "1978".
"""

from __future__ import annotations

import re

from pipeline.normalise import ZWNJ, normalise_text

_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789", ZWNJ)
_WORD = re.compile(r"\w+")
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


def fold(text: str) -> str:
    """Normalised, digits in ASCII, no zero-width non-joiner, lower case."""
    return normalise_text(text).translate(_DIGITS).lower()


def content_words(text: str) -> frozenset[str]:
    """The folded words of `text` that are not function words."""
    return frozenset(w for w in _WORD.findall(fold(text)) if w not in STOP_WORDS)
