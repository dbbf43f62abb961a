"""The embedded default answerer: no language model, only the sources' own sentences.

It says so in its first line, then quotes the retrieved sentences that share the most
(rare) words with the question, each with its [n] citation. With no sources at all it says
plainly that there is nothing to answer from.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from pipeline.chunking import count_tokens
from pipeline.generation import Finished, TokenUsage
from pipeline.normalise import normalise_text
from pipeline.prompting import Language, Prompt, Source

HEADER: dict[Language, str] = {
    "en": (
        "No language model is configured, so this answer is not generated: it quotes the "
        "sentences of your documents that best match the question."
    ),
    "fa": (
        "هیچ مدل زبانی پیکربندی نشده است، پس این پاسخ ساخته نشده است: جمله‌هایی از اسناد شما "
        "را نقل می‌کند که بیشترین ارتباط را با پرسش دارند."
    ),
}
NOTHING_TO_ANSWER_FROM: dict[Language, str] = {
    "en": (
        "There is nothing to answer from: none of your documents is ready, or none of them "
        "contains text related to this question. Upload a PDF and ask again once it is ready."
    ),
    "fa": (
        "چیزی برای پاسخ دادن نیست: هیچ سندی از شما آماده نیست، یا هیچ‌کدام متنی مرتبط با این "
        "پرسش ندارد. یک PDF بارگذاری کنید و پس از آماده شدنش دوباره بپرسید."
    ),
}
NO_CLOSE_MATCH: dict[Language, str] = {
    "en": "No sentence shares a word with the question; the closest passage begins:",
    "fa": "هیچ جمله‌ای با واژه‌های پرسش هم‌خوان نیست؛ نزدیک‌ترین بخش چنین آغاز می‌شود:",
}

MAX_SENTENCES = 4
# A sentence scoring under this share of the best one adds noise, not an answer.
RELATIVE_CUTOFF = 0.35
_SENTENCE_END = re.compile(r"(?<=[.!?؟۔])\s+|\n+")
_WORD = re.compile(r"\w+")
_PIECE = re.compile(r"\S+\s*|\s+")
_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹", "0123456789")
_STOP_WORDS = (
    "a an and are as at be by can did do does for from how i in is it of on or that the their "
    "there this to was were what when where which who why will with you your about into "
    "از این آن با به برای بر تا چه چی چیست کدام کجا کی که را در و یا است بود هست شد می "
    "های ها هم نیز دارد دارند کرد کند چرا چگونه آیا"
)
STOP_WORDS = frozenset(_STOP_WORDS.split())


@dataclass(frozen=True)
class _Sentence:
    text: str
    source: Source
    words: frozenset[str]


def words_of(text: str) -> frozenset[str]:
    folded = normalise_text(text).lower().translate(_DIGITS)
    return frozenset(w for w in _WORD.findall(folded) if w not in STOP_WORDS)


def _sentences(sources: list[Source]) -> list[_Sentence]:
    found = []
    for source in sources:
        for piece in _SENTENCE_END.split(source.text):
            text = " ".join(piece.split())
            if len(text) >= 3:
                found.append(_Sentence(text, source, words_of(text)))
    return found


def best_sentences(
    question: str, sources: list[Source], limit: int = MAX_SENTENCES
) -> list[tuple[str, Source]]:
    """The sentences sharing the rarest words with the question, best first."""
    sentences = _sentences(sources)
    wanted = words_of(question)
    document_frequency = Counter(word for s in sentences for word in s.words & wanted)
    total = len(sentences)

    def score(sentence: _Sentence) -> float:
        shared = sentence.words & wanted
        weight = sum(math.log(1 + total / document_frequency[word]) for word in shared)
        # Long sentences share words by chance; a better-ranked source breaks ties.
        return weight / math.sqrt(1 + len(sentence.words) / 12) - 0.01 * sentence.source.n

    scored = sorted(((score(s), i, s) for i, s in enumerate(sentences) if s.words & wanted),
                    key=lambda item: (-item[0], item[1]))  # fmt: skip
    if not scored:
        return []
    best = scored[0][0]
    return [(s.text, s.source) for value, _, s in scored[:limit] if value >= RELATIVE_CUTOFF * best]


def extractive_answer(prompt: Prompt) -> str:
    language = prompt.language
    if not prompt.sources:
        return NOTHING_TO_ANSWER_FROM[language]
    picked = best_sentences(prompt.question, prompt.sources)
    lines = [HEADER[language], ""]
    if not picked:
        top = prompt.sources[0]
        opening = [" ".join(p.split()) for p in _SENTENCE_END.split(top.text) if p.strip()][:2]
        lines.append(NO_CLOSE_MATCH[language])
        picked = [(" ".join(opening), top)]
    lines += [f"- {text} [{source.n}]" for text, source in picked]
    return "\n".join(lines)


class ExtractiveProvider:
    """Streams `extractive_answer` word by word, under one model name whatever is asked."""

    def __init__(self, model: str) -> None:
        self.model = model

    def model_for(self, requested: str) -> str:
        return self.model

    def stream(self, prompt: Prompt, model: str) -> Iterator[str | Finished]:
        answer = extractive_answer(prompt)
        yield from _PIECE.findall(answer)
        yield Finished("stop", TokenUsage(prompt.tokens, count_tokens(answer)))
