"""The embedded default answerer: no language model, only the sources' own words.

It says so in its first line, then quotes the passage of the retrieved sources that answers
the question best, with its [n] citation:

1. Candidates: the sources' sentences (`pipeline/sentences.py`), in document order, without
   fragments (a piece that starts in the middle of a sentence, or a few words) and exact
   duplicates; a line of code is a candidate of its own.
2. Each is scored by its similarity to the question, with the embedder at sentence level
   (e5 "query:" against "passage:"), plus the share of the question's content words it holds,
   weighted by their rarity among the tenant's chunks when counted (`Prompt.term_counts`).
   What a sentence adds counts too: the ones embedded are chosen by shared words and by the
   technical terms they bring that the question does not hold (a command, a file name, an
   identifier; a number when a number is asked for; twice a term whose words are the
   question's, such as `\\DeclareFixedFont` for "declare a fixed font"). A sentence that only
   restates the question, or names nothing new, is quoted with the next one when that one
   names what was asked.
3. When no sentence is close enough (`COVERED_SIMILARITY`), or most of the question's words
   are in none of the sources and none is very close (`SURE_SIMILARITY`), it says plainly
   that the documents do not seem to cover this; for an embedder not measured, shared words
   decide.
4. The best sentence is quoted with the neighbours that complete it, in document order
   (`pipeline/passages.py`): what a colon announces, the code line it describes, a list's lead
   sentence, the next sentence after one that only restates the question. Up to two more
   passages follow when they score nearly as well. Code is set in backticks, and so is a
   quote holding an [n] of its own, so it is never read as a citation.
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
from pipeline.lexicon import TermCounts, content_words, fold, stem_forms, technical_terms
from pipeline.normalise import looks_like_code
from pipeline.passages import Sentence, candidates, cut_source, passage
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

# Sentences embedded per answer, the best by shared words and source rank: about a second.
MAX_CANDIDATES = 24
# Passages quoted at most.
MAX_PASSAGES = 3
# A passage scoring under this share of the best one's margin above the threshold is noise.
RELATIVE_CUTOFF = 0.5
# The weight of shared content words next to the embedder's similarity; of added technical
# terms when choosing the sentences to embed.
WORD_WEIGHT = 0.2
ADD_WEIGHT = 0.1
# Added terms counted at most: a sentence of many identifiers is not worth more for them.
MAX_ADDED = 3
ADD_SCORE = 0.005
# Question words in a term that make it the name of what was asked.
NAMED_WORDS = 2
# Best sentence similarity to the question below which the documents do not cover it, per
# embedder; and when this share of the question's words (by weight, of a script the sources
# are written in) is in none of the sources, the similarity they must reach to cover it.
# Measured for multilingual-e5-small on the dev and extra sets, 12 questions of our own on
# four other documents, and 15 questions no document covers, 7 of them about TeX tools the
# documents never name: 0 unrelated questions quoted, 3 of 34 covered ones said not covered.
COVERED_SIMILARITY = {"multilingual-e5-small": 0.85}
SURE_SIMILARITY = {"multilingual-e5-small": 0.887}
MISSING_SHARE = 0.5
SCRIPT_SHARE = 0.2
# For an embedder not measured: the share of the question's content words a sentence holds.
COVERED_WORD_SHARE = 0.6

_PIECE = re.compile(r"\S+\s*|\s+")
_OWN_CITATION = re.compile(r"\[\d+\]|`")
# Questions whose answer may be a number: a year, a count, a size, a version.
_ASKS_QUANTITY = re.compile(
    r"\b(how (many|much|long|big|large|old)|when|what year|which year|version|size|number)\b"
    r"|چند|چه سال|کدام سال|چه زمان|کی |نسخه|اندازه|شماره",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"[\d.,:/-]+")


def _weights(
    sentences: Sequence[Sentence], wanted: frozenset[str], counts: TermCounts
) -> dict[str, float]:
    """The weight of each question word: its rarity among the tenant's chunks when counted,
    else among the candidate sentences."""
    frequency = Counter(word for s in sentences for word in s.holding(wanted))
    total = len(sentences) or 1
    weights = {}
    for word in wanted:
        rarity = counts.rarity(word)
        weights[word] = math.log(1 + total / (frequency[word] or 1)) if rarity is None else rarity
    return weights


def _script(word: str) -> str:
    return "latin" if word.isascii() else "other"


def _scripts(sentences: Sequence[Sentence]) -> set[str]:
    """The scripts the sources are written in: of at least `SCRIPT_SHARE` of their words (an
    English guide quoting a Persian sample is English)."""
    written = Counter(_script(w) for s in sentences for w in s.words)
    total = sum(written.values()) or 1
    return {script for script, n in written.items() if n >= SCRIPT_SHARE * total}


def _added(sentence: Sentence, question: str, asked: frozenset[str], wanted: frozenset[str]) -> int:
    """How many technical terms the sentence brings that the question does not hold; one
    whose words are the question's (`\\DeclareFixedFont` for "declare a fixed font") counts
    twice: it is the name of what was asked."""
    added = sentence.terms - asked
    if not _ASKS_QUANTITY.search(question):  # a number is an answer only to such questions
        added = frozenset(term for term in added if not _NUMBER.fullmatch(term))
    named = sum(1 for term in added if len(content_words(term) & wanted) >= NAMED_WORDS)
    return min(MAX_ADDED, len(added) + named)


@dataclass(frozen=True)
class Choice:
    """What the answerer found: the passages, best first (each its sentences in document
    order, with their source), or none when nothing is close."""

    passages: list[tuple[list[str], Source]]
    covered: bool

    @property
    def quotes(self) -> list[tuple[str, Source]]:
        """Every quoted sentence with its source, passage by passage."""
        return [(text, source) for texts, source in self.passages for text in texts]


def choose_passages(
    question: str,
    sources: Sequence[Source],
    embedder: Embedder,
    counts: TermCounts | None = None,
) -> Choice:
    wanted = content_words(question)
    asked = technical_terms(question)
    pieces = [cut_source(source) for source in sources]
    sentences = candidates(sources, pieces)
    weight = _weights(sentences, wanted, counts or TermCounts())
    whole = sum(weight.values()) or 1.0
    shares = [sum(weight[w] for w in s.holding(wanted)) / whole for s in sentences]
    added = [
        _added(s, question, asked, wanted) if shares[k] > 0 else 0 for k, s in enumerate(sentences)
    ]
    # The best by shared words and added terms, then by source rank, are worth embedding.
    order = sorted(
        range(len(sentences)),
        key=lambda k: (-(shares[k] + ADD_WEIGHT * added[k]), sentences[k].source.n, k),
    )[:MAX_CANDIDATES]
    picked = [sentences[k] for k in order]
    if not picked:
        return Choice([], False)
    share = np.asarray([shares[k] for k in order], dtype=np.float32)
    query = embedder.embed_query(fold(question)).vectors[0]
    similarity = embedder.embed_passages([s.text for s in picked]).vectors @ query
    threshold = COVERED_SIMILARITY.get(embedder.model)
    if threshold is None:  # an embedder whose scale we have not measured: words decide
        covered = float(share.max()) >= COVERED_WORD_SHARE
        threshold = float(similarity.max()) - 0.05
    else:
        closest = float(similarity.max())
        # Most of what was asked (by weight) in none of the sources: about something else,
        # unless the embedder is sure.
        in_sources = frozenset().union(*(s.forms for s in sentences))
        scripts = _scripts(sentences)  # a Persian word is not missing from English sources
        absent = [w for w in wanted if not stem_forms(w) & in_sources and _script(w) in scripts]
        missing = sum(weight[w] for w in absent) / whole
        sure = SURE_SIMILARITY[embedder.model]
        covered = closest >= threshold and (missing < MISSING_SHARE or closest >= sure)
    if not covered:
        return Choice([], False)
    score = similarity + WORD_WEIGHT * share + ADD_SCORE * np.asarray([added[k] for k in order])
    ranked = sorted(range(len(picked)), key=lambda k: -score[k])
    best = float(score[ranked[0]])
    floor = threshold + RELATIVE_CUTOFF * (best - threshold)
    passages: list[tuple[list[str], Source]] = []
    quoted_keys: set[tuple[int, int]] = set()
    for k in ranked:
        sentence = picked[k]
        if len(passages) == MAX_PASSAGES or (passages and score[k] < floor):
            break
        if (sentence.source.n, sentence.position) in quoted_keys:
            continue
        piece = pieces[sources.index(sentence.source)]
        positions = passage(sentence, piece, wanted, asked)
        quoted_keys |= {(sentence.source.n, j) for j in positions}
        passages.append(([piece.texts[j] for j in positions], sentence.source))
    return Choice(passages, True)


def quoted(text: str) -> str:
    """A sentence as the answer quotes it: in backticks when it holds code or its own [n]."""
    if looks_like_code(text) or _OWN_CITATION.search(text):
        return "`" + text.replace("`", "'") + "`"
    return text


def extractive_answer(prompt: Prompt, embedder: Embedder) -> str:
    language = prompt.language
    if not prompt.sources:
        return NOTHING_TO_ANSWER_FROM[language]
    choice = choose_passages(prompt.question, prompt.sources, embedder, prompt.term_counts)
    if not choice.covered:
        return NOT_COVERED[language]
    lines = [HEADER[language], ""]
    for texts, source in choice.passages:
        lines.append(f"- {' '.join(quoted(text) for text in texts)} [{source.n}]")
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
