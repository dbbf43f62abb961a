"""Text cleaning that makes Persian and English PDF text searchable and readable.

- Unicode NFKC folds Arabic presentation forms (what many PDFs store) into plain letters.
- Arabic letters Persian writes differently become the Persian ones (ي ى → ی, ك → ک), and
  Arabic-Indic digits become Persian digits, so one spelling matches another. Search folds
  every digit form to ASCII on top of this (see `db/search.py`).
- Tatweel and short-vowel marks go; the zero-width non-joiner (نیم‌فاصله) stays.
- Control and invisible formatting characters go, words hyphenated across lines are joined,
  whitespace collapses: lines of a paragraph join with a space, paragraphs keep a blank line.
- A line of code or a formula (`\\DeclareFixedFont{...}`, `x = f(y);`) keeps a line of its own,
  so chunking and the offline answerer take it whole, never joined into a sentence or cut. A
  line that only starts with a command and goes on in words is prose.
- In a line of right-to-left text, the bidirectional order moves the punctuation that leads a
  left-to-right word to its end: a command's backslash ("section\\" or "section \\به" for
  `\\section`), an extension's dot ("tex." for `.tex`). They go back where they were typed, so
  search and answers see `\\section` and `.tex`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

ZWNJ = "\u200c"

_LETTERS = str.maketrans(
    {
        "\u064a": "\u06cc",  # ARABIC YEH -> FARSI YEH
        "\u0649": "\u06cc",  # ALEF MAKSURA -> FARSI YEH
        "\u0643": "\u06a9",  # ARABIC KAF -> KEHEH
        **{chr(0x0660 + d): chr(0x06F0 + d) for d in range(10)},  # Arabic-Indic -> Persian
    }
)
# Tatweel, harakat and Quranic marks, superscript alef: decoration that breaks word matching.
_MARKS = re.compile("[\u0640\u064b-\u065f\u0670\u06d6-\u06ed]")
# Bidi controls, zero-width space and joiner, BOM, soft hyphen: invisible, never meaningful here.
_INVISIBLE = re.compile("[\u200b\u200d\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff\u00ad]")
# C0/C1 controls except tab and newline; PDFium marks a line-end hyphen it inferred with \x02
# (or U+FFFE, which it also leaves inside a word it hyphenated).
_CONTROL = re.compile("[\x00-\x01\x03-\x08\x0b-\x1f\x7f-\x9f]")
_HYPHENATED = re.compile(r"(\w)(?:[-\u2010\x02]\n|\ufffe\n?)[ \t]*(?=[a-z])")
_SPACES = re.compile(r"[ \t\f\v]+")
_SPACE_AROUND_ZWNJ = re.compile(rf" ?{ZWNJ}+ ?")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_CODE_START = re.compile(r"^(\\\w|[{}$%#<]|//|>>>)")
_CODE_SYMBOLS = frozenset("\\{}[]()<>=;$_^|&@")
CODE_SYMBOL_SHARE = 0.12
# A line that starts like code but holds this many plain words and one command at most is a
# sentence that names a command ("\\section starts a new section and prints its title").
PROSE_WORDS = 4
_PLAIN_WORD = re.compile(r"(?<!\S)[^\W\d_]{2,}[,.;:!?؟،]?(?!\S)")
_COMMAND = re.compile(r"\\[^\W\d_]")

_ARABIC_SCRIPT = re.compile("[\u0600-\u06ff]")
# "section\\ ..." or "section\\به": the backslash of `\\section` moved to the end of its word.
_BACKSLASH_AFTER = re.compile(r"(?<![\\\w@])([A-Za-z@]+\*?)\\(?=\s|$|[\u0600-\u06ff،؛])")
# "section \\به": ... or onto the right-to-left word that follows.
_BACKSLASH_ON_NEXT = re.compile(r"(?<![\\\w@])([A-Za-z@]+) \\(?=[\u0600-\u06ff])")
# "فوق\\" at a word's end: a command named in Persian (xepersian's), its backslash moved.
_ARABIC_COMMAND = re.compile(r"(?<!\S)([\u0600-\u06ff\u200c]+)\\(?=\s|$)")
# "tex." between right-to-left words (or first in the line): the extension `.tex`, its dot
# moved. After a left-to-right word it ends a sentence ("a small dot. آیا").
_DOT_AFTER = re.compile(r"(?:^|(?<=[\u0600-\u06ff] ))([a-z][a-z0-9]{0,4})\.(?=\s?[\u0600-\u06ff])")


def looks_like_code(line: str) -> bool:
    """A TeX command, a program statement or a formula rather than prose."""
    visible = [ch for ch in line if not ch.isspace()]
    symbols = sum(ch in _CODE_SYMBOLS for ch in visible)
    if len(visible) >= 4 and symbols >= CODE_SYMBOL_SHARE * len(visible):
        return True
    if not _CODE_START.match(line):
        return False
    prose = len(_PLAIN_WORD.findall(line)) >= PROSE_WORDS
    return not prose or len(_COMMAND.findall(line)) > 1


def _moved_back(mark: str) -> Callable[[re.Match[str]], str]:
    """A substitution that puts `mark` back before the matched word, a space after it when
    a word was glued to it."""

    def put_back(match: re.Match[str]) -> str:
        rest = match.string[match.end() : match.end() + 1]
        return f"{mark}{match.group(1)}" + (" " if rest.isalpha() else "")

    return put_back


def _restore_rtl_punctuation(line: str) -> str:
    """A line of right-to-left text with its commands' backslashes and its extensions' dots
    back before their words (see the module docstring)."""
    if not _ARABIC_SCRIPT.search(line):
        return line
    line = _BACKSLASH_AFTER.sub(_moved_back("\\"), line)
    line = _BACKSLASH_ON_NEXT.sub(_moved_back("\\"), line)
    line = _ARABIC_COMMAND.sub(_moved_back("\\"), line)
    return _DOT_AFTER.sub(_moved_back("."), line)


def _join_lines(paragraph: str) -> str:
    """The lines of a paragraph joined by spaces, code lines kept on lines of their own."""
    joined = ""
    after_code = False
    for line in (line.strip() for line in paragraph.split("\n")):
        if not line:
            continue
        code = looks_like_code(line)
        joiner = "\n" if (code or after_code) else " "
        joined = f"{joined}{joiner}{line}" if joined else line
        after_code = code
    return joined


def normalise_text(text: str) -> str:
    """Normalised text of one page (or one query): see the module docstring."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _HYPHENATED.sub(r"\1", text)
    text = text.replace("\x02", "").replace("\ufffe", "")
    text = unicodedata.normalize("NFKC", text)
    text = text.translate(_LETTERS)
    text = _MARKS.sub("", text)
    text = _INVISIBLE.sub("", text)
    text = _CONTROL.sub(" ", text)
    text = _SPACES.sub(" ", text)
    text = _SPACE_AROUND_ZWNJ.sub(ZWNJ, text)
    text = "\n".join(_restore_rtl_punctuation(line) for line in text.split("\n"))
    paragraphs = _PARAGRAPH_BREAK.split(text)
    joined = (_join_lines(p) for p in paragraphs)
    return "\n\n".join(p for p in joined if p)
