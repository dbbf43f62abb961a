"""Running headers, footers and page numbers: the lines a PDF repeats in every page's margin.

They are not content: left in, a section title or "Prepared by: ..." lands in every chunk,
matches every search for its words, and gets quoted as an answer. A line is taken for a
running line when it sits among the first or last `EDGE_LINES` lines of a page and either
- is a page number ("4", "- 4 -", "iv", "Page 4 of 20", "صفحه ۴"), or
- appears at the same edge of at least `MIN_REPEATS` pages, and is short (`MAX_LENGTH`
  characters). A number in it counts as the same when it follows the page number ("Basics 4"
  on page 5, "Basics 5" on page 6 are one line); any other number must be the same.

Pages are compared within what is read together (a batch of pages), with a few neighbouring
pages as context when a batch is small. Text in is PDFium's, lines separated by newlines.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace

from pipeline.pdf import PageText

EDGE_LINES = 2
MIN_REPEATS = 3
MAX_LENGTH = 120
# A batch smaller than this is compared with neighbouring pages too.
CONTEXT_PAGES = 4

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_NUMBER = re.compile(r"\d+")
_PAGE_NUMBER = re.compile(
    r"^(page |p\. ?|صفحه ?)?[-–—(\[]?\s*(#|[ivxlcdm]{1,6})\s*[-–—)\]]?(\s*(/|of|از)\s*#)?$"
)


def _shape(line: str) -> str:
    """A line with its numbers as '#', folded: "Basics 4" and "Basics 12" have one shape."""
    folded = _NUMBER.sub("#", unicodedata.normalize("NFKC", line).lower())
    return " ".join(folded.split())


def _key(line: str, page: int) -> str:
    """What repeats from page to page: the shape, and how its first number stands to the
    page number (a running header's follows it; a year or a count in the text does not)."""
    number = _NUMBER.search(line)
    if number is None:
        return _shape(line)
    try:
        offset = int(number.group()) - page
    except ValueError:
        return " ".join(line.split())
    rest = line[: number.start()] + "#" + line[number.end() :]
    return f"{_shape(rest) if not _NUMBER.search(rest) else ' '.join(rest.split())} @{offset}"


def _lines(text: str) -> list[str]:
    return [line.strip() for line in _LINE_BREAK.split(text) if line.strip()]


def _edge_counts(
    pages: Sequence[tuple[int, list[str]]],
) -> tuple[Counter[str], Counter[str]]:
    top: Counter[str] = Counter()
    bottom: Counter[str] = Counter()
    for number, lines in pages:
        top.update({_key(line, number) for line in lines[:EDGE_LINES]})
        bottom.update({_key(line, number) for line in lines[-EDGE_LINES:]})
    return top, bottom


def _running(line: str, page: int, counts: Counter[str]) -> bool:
    if _PAGE_NUMBER.match(_shape(line)):
        return True
    return counts[_key(line, page)] >= MIN_REPEATS and len(line) <= MAX_LENGTH


def strip_running_lines(
    pages: Sequence[PageText], context: Sequence[PageText] = ()
) -> list[PageText]:
    """`pages` without their running headers, footers and page numbers; `context` (other
    pages of the same document) only helps to recognise them."""
    split = [_lines(page.text) for page in pages]
    top, bottom = _edge_counts(
        [(page.number, lines) for page, lines in zip(pages, split, strict=True)]
        + [(page.number, _lines(page.text)) for page in context]
    )
    stripped = []
    for page, lines in zip(pages, split, strict=True):
        first, end = 0, len(lines)
        n = page.number
        while first < min(EDGE_LINES, end) and _running(lines[first], n, top):
            first += 1
        while end > max(first, len(lines) - EDGE_LINES) and _running(lines[end - 1], n, bottom):
            end -= 1
        stripped.append(replace(page, text="\n".join(lines[first:end])))
    return stripped


def without_running_lines(
    pages: Iterable[PageText], context: Sequence[PageText] = (), window: int = 32
) -> Iterator[PageText]:
    """`strip_running_lines` over a stream of pages, `window` pages at a time, each window
    compared with the end of the one before and with `context`."""
    buffer: list[PageText] = []
    previous: list[PageText] = []
    for page in pages:
        buffer.append(page)
        if len(buffer) == window:
            yield from strip_running_lines(buffer, [*previous, *context])
            previous, buffer = buffer[-CONTEXT_PAGES:], []
    if buffer:
        yield from strip_running_lines(buffer, [*previous, *context])
