"""The embedded default answerer: no language model, only the sources' own sentences.

It says so in its first line, then quotes the few sentences of the retrieved sources that
answer the question best, each with its [n] citation:

1. Candidates: the sources' sentences (`pipeline/sentences.py`), without fragments (a piece
   that starts in the middle of a sentence, or a few words), exact and near duplicates.
2. Each is scored by its similarity to the question, with the embedder at sentence level
   (e5 "query:" against "passage:"), plus the share of the question's content words it holds
   (weighted by rarity among the candidates), so an identifier asked for counts.
3. When no sentence is close enough, by `COVERED_SIMILARITY` (measured for the embedder on
   the dev set and on questions the documents do not cover) or by shared words for an
   embedder not measured, it says plainly that the documents do not seem to cover this.
4. The best few, within a share of the best score, are quoted best first. A quote that holds
   code or an [n] of its own is set in backticks, so it is never read as a citation.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.chunking import count_tokens
from pipeline.embedding import Embedder
from pipeline.generation import Finished, TokenUsage
from pipeline.lexicon import content_words, fold
from pipeline.normalise import looks_like_code
from pipeline.prompting import Language, Prompt, Source
from pipeline.sentences import split_sentences

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
NOT_COVERED: dict[Language, str] = {
    "en": (
        "The documents do not seem to cover this: no passage of them is close enough to the "
        "question. Try other words, or upload a document that covers it."
    ),
    "fa": (
        "به نظر می‌رسد اسناد به این پرسش نمی‌پردازند: هیچ بخشی از آن‌ها به اندازهٔ کافی به پرسش "
        "نزدیک نیست. با واژه‌های دیگری بپرسید یا سندی بارگذاری کنید که به آن بپردازد."
    ),
}

MAX_SENTENCES = 3
# Sentences embedded per answer, the best by shared words and source rank: about a second.
MAX_CANDIDATES = 24
MIN_WORDS = 4
MAX_WORDS = 90
# A quote scoring under this share of the best one's margin above the threshold is noise.
RELATIVE_CUTOFF = 0.5
# The weight of shared content words next to the embedder's similarity.
WORD_WEIGHT = 0.1
# Best sentence similarity to the question below which the documents do not cover it,
# per embedder. multilingual-e5-small on the dev set: questions the documents answer
# 0.860-0.927, questions they do not cover (12, Persian and English) 0.786-0.849.
COVERED_SIMILARITY = {"multilingual-e5-small": 0.855}
# For an embedder not measured: the share of the question's content words a sentence holds.
COVERED_WORD_SHARE = 0.6
# Near duplicates: this share of the shorter sentence's words in the longer one.
DUPLICATE_SHARE = 0.8

_PIECE = re.compile(r"\S+\s*|\s+")
_OWN_CITATION = re.compile(r"\[\d+\]|`")
_ENDS = re.compile(r"[.!?؟…:;)\]»\"'”]$")


@dataclass(frozen=True)
class _Sentence:
    text: str
    source: Source
    words: frozenset[str]
    code: bool


def _is_fragment(text: str, last_in_source: bool, code: bool) -> bool:
    """A cut-off piece: starts in the middle of a sentence, stops in one, or says too little."""
    if code:
        return False
    words = text.split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        return True
    if text[0].islower():  # Latin prose starts with a capital; other scripts have none
        return True
    return last_in_source and not _ENDS.search(text)


def _candidates(sources: Sequence[Source]) -> list[_Sentence]:
    found: list[_Sentence] = []
    seen: set[str] = set()
    for source in sources:
        pieces = split_sentences(source.text)
        for index, text in enumerate(pieces):
            code = looks_like_code(text)
            if _is_fragment(text, index == len(pieces) - 1, code):
                continue
            key = " ".join(fold(text).split())
            words = content_words(text)
            if key in seen or not words:
                continue
            seen.add(key)
            found.append(_Sentence(text, source, words, code))
    return found


def _word_share(sentences: Sequence[_Sentence], wanted: frozenset[str]) -> list[float]:
    """Per sentence, the rarity-weighted share of the question's content words it holds."""
    frequency = Counter(word for s in sentences for word in s.words & wanted)
    total = len(sentences)
    weight = {word: math.log(1 + total / frequency[word]) for word in frequency}
    whole = sum(weight.values()) or 1.0
    return [sum(weight[word] for word in s.words & wanted) / whole for s in sentences]


def _distinct(ranked: Sequence[_Sentence]) -> Iterator[_Sentence]:
    """Sentences best first, leaving out one whose words mostly repeat a better one's."""
    kept: list[_Sentence] = []
    for sentence in ranked:
        if any(
            len(sentence.words & other.words)
            >= DUPLICATE_SHARE * min(len(sentence.words), len(other.words))
            for other in kept
        ):
            continue
        kept.append(sentence)
        yield sentence


@dataclass(frozen=True)
class Choice:
    """What the answerer found: the quotes, best first, or none when nothing is close."""

    quotes: list[tuple[str, Source]]
    covered: bool


def choose_sentences(question: str, sources: Sequence[Source], embedder: Embedder) -> Choice:
    wanted = content_words(question)
    sentences = _candidates(sources)
    shares = _word_share(sentences, wanted)
    # The best by shared words, then by source rank, are the ones worth embedding.
    order = sorted(range(len(sentences)), key=lambda i: (-shares[i], sentences[i].source.n, i))
    picked = [sentences[i] for i in order[:MAX_CANDIDATES]]
    if not picked:
        return Choice([], False)
    share = np.asarray([shares[i] for i in order[:MAX_CANDIDATES]], dtype=np.float32)
    query = embedder.embed_query(fold(question)).vectors[0]
    similarity = embedder.embed_passages([s.text for s in picked]).vectors @ query
    threshold = COVERED_SIMILARITY.get(embedder.model)
    if threshold is None:  # an embedder whose scale we have not measured: words decide
        covered = float(share.max()) >= COVERED_WORD_SHARE
        threshold = float(similarity.max()) - 0.05
    else:
        covered = float(similarity.max()) >= threshold
    if not covered:
        return Choice([], False)
    score = similarity + WORD_WEIGHT * share
    ranked = sorted(range(len(picked)), key=lambda i: -score[i])
    best = float(score[ranked[0]])
    floor = threshold + RELATIVE_CUTOFF * (best - threshold)
    good = [picked[i] for i in ranked if score[i] >= floor or i == ranked[0]]
    quotes = [(s.text, s.source) for s in _distinct(good)][:MAX_SENTENCES]
    return Choice(quotes, True)


def quoted(text: str) -> str:
    """A sentence as the answer quotes it: in backticks when it holds code or its own [n]."""
    if looks_like_code(text) or _OWN_CITATION.search(text):
        return "`" + text.replace("`", "'") + "`"
    return text


def extractive_answer(prompt: Prompt, embedder: Embedder) -> str:
    language = prompt.language
    if not prompt.sources:
        return NOTHING_TO_ANSWER_FROM[language]
    choice = choose_sentences(prompt.question, prompt.sources, embedder)
    if not choice.covered:
        return NOT_COVERED[language]
    lines = [HEADER[language], ""]
    lines += [f"- {quoted(text)} [{source.n}]" for text, source in choice.quotes]
    return "\n".join(lines)


class ExtractiveProvider:
    """Streams `extractive_answer` word by word, under one model name whatever is asked."""

    def __init__(self, model: str, embedder: Embedder) -> None:
        self.model = model
        self._embedder = embedder

    def model_for(self, requested: str) -> str:
        return self.model

    def stream(self, prompt: Prompt, model: str) -> Iterator[str | Finished]:
        answer = extractive_answer(prompt, self._embedder)
        yield from _PIECE.findall(answer)
        yield Finished("stop", TokenUsage(prompt.tokens, count_tokens(answer), estimated=True))
