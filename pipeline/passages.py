"""Passages of retrieved sources, as the offline answerer quotes them: each source cut into
sentences and code lines in document order, the candidates among them (no fragments, no exact
repeats), and the neighbours that complete a chosen sentence.

A passage is the chosen sentence with, in document order: the code line it describes or the
sentence that explains a code line (a manual gives a command's syntax, then what it does); the
lead sentence of a list it is an item of; what a colon announces; and after a sentence that
only restates the question, or names nothing new, the next one when it names what was asked.
A sentence cut by the chunk's edge keeps an ellipsis where it was cut.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.lexicon import content_words, fold, stem_forms, technical_terms
from pipeline.normalise import looks_like_code
from pipeline.prompting import Source
from pipeline.sentences import split_sentences

MIN_WORDS = 4
# A sentence cut by the chunk's edge is quoted (marked `CUT`) when this many words are left.
MIN_CUT_WORDS = 12
CUT = "…"
MAX_WORDS = 90
# Words in one passage beyond its chosen sentence.
MAX_NEIGHBOUR_WORDS = 60
# A sentence this share of whose content words are the question's restates it.
ECHO_SHARE = 0.6

_ENDS = re.compile(r"[.!?؟…:;)\]»\"'”]$")
# "2.4 Command names ...": a heading's number, not a number the sentence gives.
_SECTION_NUMBER = re.compile(r"^\d+(\.\d+)*\s")
_LIST_ITEM = re.compile(r"^([-•*–·▪]|\(?\d{1,2}[.)]|\(?[a-z][.)])\s")


@dataclass(frozen=True)
class Sentence:
    text: str
    source: Source
    position: int  # among the pieces of its source
    words: frozenset[str]
    terms: frozenset[str]  # technical terms (`pipeline/lexicon.py`)
    code: bool
    forms: frozenset[str]  # its words' inflected forms (`stem_forms`)

    def holding(self, wanted: frozenset[str]) -> frozenset[str]:
        """The words of `wanted` it holds, as written or inflected otherwise."""
        return frozenset(w for w in wanted if w in self.words or stem_forms(w) & self.forms)


@dataclass(frozen=True)
class Piece:
    """A source cut into sentences and code lines, in document order."""

    texts: list[str]
    code: list[bool]


def is_fragment(text: str, code: bool) -> bool:
    """A piece that says too little to quote: a few words, or a short end of a sentence the
    source's edge cut (`cut_source` marks those with an ellipsis)."""
    if code:
        return False
    words = len(text.split())
    if not MIN_WORDS <= words <= MAX_WORDS:
        return True
    return (text.startswith(CUT) or text.endswith(CUT)) and words < MIN_CUT_WORDS


def _starts_cut(text: str) -> bool:
    # Latin prose starts with a capital (other scripts have none), or with a technical term.
    return text[0].islower() and not technical_terms(text.split()[0])


def cut_source(source: Source) -> Piece:
    """The source's sentences and code lines; one the chunk's edge cut is marked where it was
    cut, so that a quote of it says so."""
    texts = split_sentences(source.text)
    code = [looks_like_code(text) for text in texts]
    if texts and not code[0] and _starts_cut(texts[0]):
        texts[0] = f"{CUT} {texts[0]}"
    if texts and not code[-1] and not _ENDS.search(texts[-1]):
        texts[-1] = f"{texts[-1]} {CUT}"
    return Piece(texts, code)


def candidates(sources: Sequence[Source], pieces: Sequence[Piece]) -> list[Sentence]:
    found: list[Sentence] = []
    seen: set[str] = set()
    for source, piece in zip(sources, pieces, strict=True):
        for index, text in enumerate(piece.texts):
            code = piece.code[index]
            if is_fragment(text, code):
                continue
            key = " ".join(fold(text).split())
            words = content_words(text)
            if key in seen or not words:
                continue
            seen.add(key)
            terms = technical_terms(_SECTION_NUMBER.sub("", text))
            forms = frozenset().union(*map(stem_forms, words))
            found.append(Sentence(text, source, index, words, terms, code, forms))
    return found


def restates(sentence: Sentence, wanted: frozenset[str]) -> bool:
    """Most of the sentence's words are the question's."""
    return _echoes(sentence.text, wanted)


def _echoes(text: str, wanted: frozenset[str]) -> bool:
    words = content_words(text)
    held = {
        w
        for w in wanted
        if w in words or stem_forms(w) & frozenset().union(*map(stem_forms, words))
    }
    return bool(words) and len(held) >= ECHO_SHARE * len(words)


def _list_goes_on(texts: Sequence[str], j: int) -> bool:
    """The piece at `j` is a list item and the next one is too."""
    return j + 1 < len(texts) and all(_LIST_ITEM.match(t) for t in texts[j : j + 2])


def passage(
    best: Sentence, piece: Piece, wanted: frozenset[str], asked: frozenset[str]
) -> list[int]:
    """The positions of the best sentence and the neighbours that complete it."""
    texts, code, i = piece.texts, piece.code, best.position
    taken = [i]
    budget = MAX_NEIGHBOUR_WORDS

    def take(j: int) -> bool:
        nonlocal budget
        if not 0 <= j < len(texts) or j in taken or len(texts[j].split()) > budget:
            return False
        budget -= len(texts[j].split())
        taken.append(j)
        return True

    # Backwards: the sentence that explains a code line, the code line a description follows
    # (a manual gives a command's syntax, then what it does); the lead sentence of a list.
    if i > 0 and code[i] != code[i - 1]:
        take(i - 1)
    elif _LIST_ITEM.match(texts[i]):
        lead = next((j for j in range(i - 1, -1, -1) if not _LIST_ITEM.match(texts[j])), None)
        if lead is not None and texts[lead].endswith(":"):
            take(lead)
    # Forwards: what a colon announces (a list, a code line), and after a sentence that names
    # nothing new or restates the question, the next one when it names what was asked.
    j = i + 1
    opens = texts[i].endswith(":")
    names_nothing = not (best.terms - asked) or restates(best, wanted)
    while j < len(texts):
        following = technical_terms(texts[j]) - asked - best.terms
        if not (opens or (names_nothing and (code[j] or following))) or not take(j):
            break
        opens = texts[j].endswith(":") or _list_goes_on(texts, j)
        names_nothing = code[j] and not following
        j += 1
    return sorted(taken)
