"""Sentences of Persian and English text, as chunking and the offline answerer cut them.

A sentence ends at . ! ? ؟ … (or one followed by a closing quote or bracket) before
whitespace, and at a line break, which normalised text keeps only around code lines
(`pipeline/normalise.py`). A full stop after an abbreviation ("e.g.", "i.e.", "etc.", "Fig.")
or an initial ("D. E. Knuth") ends nothing, nor does one inside a number ("2.5").
"""

from __future__ import annotations

import re

_END = re.compile(r"(?<=[.!?؟…])[\"'»)\]]?\s+|\n+")
_LAST_WORD = re.compile(r"(\S+)\.[\"'»)\]]?\s*$")
_ABBREVIATIONS = (
    "e.g i.e etc cf vs al fig figs eq eqs no nos vol p pp ch sec ed eds dr mr mrs ms prof st "
    "approx resp viz ca"
)
ABBREVIATIONS = frozenset(_ABBREVIATIONS.split())


def _ends_sentence(before: str) -> bool:
    """Whether the full stop at the end of `before` ends a sentence."""
    last = _LAST_WORD.search(before)
    if last is None:
        return True
    word = last.group(1).lower().lstrip("([\"'«")
    if word in ABBREVIATIONS:
        return False
    # An initial: one letter, capital in scripts that have them ("D." in "D. E. Knuth").
    return not (len(word) == 1 and word.isalpha() and last.group(1)[-1].isupper())


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, stripped, none empty."""
    sentences: list[str] = []
    start = 0
    for match in _END.finditer(text):
        piece = text[start : match.start() + len(match.group(0).rstrip())]
        if "\n" not in match.group(0) and piece.endswith(".") and not _ends_sentence(piece):
            continue
        sentences.append(piece)
        start = match.end()
    sentences.append(text[start:])
    return [s.strip() for s in sentences if s.strip()]
