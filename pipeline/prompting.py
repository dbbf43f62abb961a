"""From a question, retrieved sources and the session's history to the messages a model reads.

The instructions are in Persian when the question is, in English otherwise. Sources and
history together stay within a token budget (tiktoken): sources keep their retrieval order and
come first; history fills what is left, newest turn first, so the oldest is dropped first.
When the model's context window is known, the whole prompt is fitted to it with room left for
the answer, and a margin because the model's tokenizer is not tiktoken.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from pipeline.chunking import count_tokens
from pipeline.errors import ContextOverflow
from pipeline.lexicon import TermCounts

Language = Literal["fa", "en"]

# Arabic-script letters (Persian included) against Latin ones decide the question's language.
_ARABIC_LETTER = re.compile(r"[\u0600-\u06ff\u0750-\u077f\ufb50-\ufdff\ufe70-\ufeff]")
_LATIN_LETTER = re.compile(r"[A-Za-z]")
# Tokens a chat message costs beyond its text in OpenAI's chat format.
MESSAGE_OVERHEAD_TOKENS = 4
# tiktoken's count of a prompt against the model's own tokenizer: leave this share spare.
WINDOW_MARGIN = 0.15

INSTRUCTIONS: dict[Language, str] = {
    "en": (
        "You answer questions about the user's documents. Use only the numbered sources "
        "below; do not use outside knowledge. Cite every statement with the number of its "
        "source in square brackets, like [1] or [2][3]. If the sources do not contain the "
        "answer, say so plainly and do not guess. Answer in the language of the question."
    ),
    "fa": (
        "تو به پرسش‌های کاربر دربارهٔ اسنادش پاسخ می‌دهی. فقط از منابع شماره‌دار زیر استفاده کن "
        "و از دانسته‌های بیرونی چیزی نگو. هر گفته را با شمارهٔ منبعش در کروشه بیاور، مانند [1] "
        "یا [2][3]. اگر پاسخ در منابع نیست، صریح بگو که نیست و حدس نزن. به زبان پرسش پاسخ بده."
    ),
}
LABELS: dict[Language, dict[str, str]] = {
    "en": {
        "sources": "Sources",
        "question": "Question",
        "pages": "pages",
        "page": "page",
        "section": "section",
    },
    "fa": {
        "sources": "منابع",
        "question": "پرسش",
        "pages": "صفحه‌های",
        "page": "صفحهٔ",
        "section": "بخش",
    },
}


def question_language(text: str) -> Language:
    """Persian when Arabic-script letters outnumber Latin ones, English otherwise."""
    return "fa" if len(_ARABIC_LETTER.findall(text)) > len(_LATIN_LETTER.findall(text)) else "en"


@dataclass(frozen=True)
class Source:
    """A retrieved chunk as the model and the reader see it: numbered from 1 in the prompt."""

    n: int
    chunk_id: uuid.UUID
    document_id: uuid.UUID
    filename: str
    page_start: int
    page_end: int
    text: str
    section: str | None = None  # the heading it falls under (formats without pages)

    def pages(self, language: Language) -> str:
        if self.page_start == self.page_end:
            where = f"{LABELS[language]['page']} {self.page_start}"
        else:
            where = f"{LABELS[language]['pages']} {self.page_start}–{self.page_end}"
        return f"{LABELS[language]['section']} «{self.section}», {where}" if self.section else where


@dataclass(frozen=True)
class Turn:
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class Prompt:
    messages: list[dict[str, str]]
    sources: list[Source]  # those that fit, renumbered 1..n in the order given
    history: list[Turn]  # the turns that fit, oldest first
    language: Language
    question: str
    # How many of the tenant's chunks hold each word of the question, for an answerer that
    # weighs words by their rarity; empty when not counted.
    term_counts: TermCounts = field(default_factory=TermCounts)

    @cached_property
    def tokens(self) -> int:
        return sum(count_tokens(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in self.messages)


def format_source(source: Source, language: Language) -> str:
    return f"[{source.n}] {source.filename}, {source.pages(language)}\n{source.text}"


def _renumbered(source: Source, n: int) -> Source:
    return Source(
        n,
        source.chunk_id,
        source.document_id,
        source.filename,
        source.page_start,
        source.page_end,
        source.text,
        source.section,
    )


def fit_sources(sources: Sequence[Source], budget: int, language: Language) -> list[Source]:
    """The sources, in order, that fit in `budget` tokens; one too long is skipped."""
    kept: list[Source] = []
    for source in sources:
        candidate = _renumbered(source, len(kept) + 1)
        cost = count_tokens(format_source(candidate, language)) + 2
        if cost <= budget:
            kept.append(candidate)
            budget -= cost
    return kept


def fit_history(history: Sequence[Turn], budget: int) -> list[Turn]:
    """The newest turns that fit in `budget` tokens, oldest first; an answer never stays
    without the question it answered."""
    kept: list[Turn] = []
    for turn in reversed(history):
        cost = count_tokens(turn.content) + MESSAGE_OVERHEAD_TOKENS
        if cost > budget:
            break
        kept.append(turn)
        budget -= cost
    kept.reverse()
    while kept and kept[0].role == "assistant":
        kept.pop(0)
    return kept


def _budget(
    question: str, language: Language, max_context_tokens: int, window: int | None, answer: int
) -> int:
    """Tokens for sources and history: MAX_CONTEXT_TOKENS, or less when the model's window
    minus the answer's room, the instructions and the question leave less."""
    if window is None:
        return max_context_tokens
    fixed = (
        count_tokens(INSTRUCTIONS[language])
        + count_tokens(question)
        + 3 * (MESSAGE_OVERHEAD_TOKENS + 4)
    )
    room = int(window * (1 - WINDOW_MARGIN)) - answer - fixed
    if room < 0:
        raise ContextOverflow(
            f"the question with the instructions ({fixed} tokens) leaves no room for sources "
            f"and a {answer}-token answer in the model's context of {window} tokens "
            "(MODEL_CONTEXT_TOKENS): ask a shorter question, lower MAX_ANSWER_TOKENS, or use a "
            "model with a larger context"
        )
    return min(max_context_tokens, room)


def build_prompt(
    question: str,
    sources: Sequence[Source],
    history: Sequence[Turn],
    max_context_tokens: int,
    window: int | None = None,
    answer_tokens: int = 0,
) -> Prompt:
    """The chat messages for `question`: instructions, the history that fits, then the
    sources that fit and the question. With the model's context `window`, everything fits in
    it with `answer_tokens` to spare (or ContextOverflow, when the question alone cannot)."""
    language = question_language(question)
    labels = LABELS[language]
    budget = _budget(question, language, max_context_tokens, window, answer_tokens)
    kept_sources = fit_sources(sources, budget, language)
    used = sum(count_tokens(format_source(s, language)) + 2 for s in kept_sources)
    kept_history = fit_history(history, budget - used)
    sources_text = "\n\n".join(format_source(s, language) for s in kept_sources)
    messages = [{"role": "system", "content": INSTRUCTIONS[language]}]
    messages += [{"role": turn.role, "content": turn.content} for turn in kept_history]
    asked = f"{labels['sources']}:\n\n{sources_text}\n\n{labels['question']}: {question}"
    messages.append({"role": "user", "content": asked})
    return Prompt(messages, kept_sources, kept_history, language, question)
