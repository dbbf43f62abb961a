"""Prompts, the extractive answerer, the OpenAI-compatible provider (against the stand-in) and
the worker's event writer (against the real Redis), without HTTP or a queue."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
import redis

from pipeline.chunking import count_tokens
from pipeline.embedding import LocalE5Embedder
from pipeline.errors import ContextOverflow, ProviderRejected, ProviderUnavailable
from pipeline.extractive import (
    HEADER,
    NOT_COVERED,
    NOTHING_TO_ANSWER_FROM,
    ExtractiveProvider,
    quoted,
)
from pipeline.generation import Finished, OpenAIChatProvider, TokenUsage
from pipeline.lexicon import content_words, stem_forms
from pipeline.passages import candidates, cut_source
from pipeline.prompting import WINDOW_MARGIN, Source, Turn, build_prompt, question_language
from standins.model_server import DEFAULT_REPLY, PROMPT_TOKENS_REPORTED, StandIn, pieces_of
from transport.events import EventWriter, cancel_key, stream_key
from usecases.streaming import relay_generation


def _source(n: int, text: str, filename: str = "notes.pdf", page: int = 1) -> Source:
    return Source(n, uuid.uuid4(), uuid.uuid4(), filename, page, page, text)


HARBOUR = _source(1, "The copper lantern hangs in the harbour. Fishermen light it every evening.")


def test_the_question_language_decides_the_instructions() -> None:
    assert question_language("کتابخانه کی ساخته شد؟") == "fa"
    assert question_language("When was the library built?") == "en"
    assert question_language("PDF فایل را باز کن") == "fa"
    fa = build_prompt("فانوس کجاست؟", [HARBOUR], [], 8000)
    assert "فقط از منابع شماره‌دار" in fa.messages[0]["content"]
    assert fa.messages[-1]["content"].startswith("منابع:\n\n[1] notes.pdf, صفحهٔ 1")
    en = build_prompt("Where is the lantern?", [HARBOUR], [], 8000)
    assert "[1] or [2][3]" in en.messages[0]["content"]
    assert en.messages[-1]["content"].endswith("Question: Where is the lantern?")


def test_history_is_trimmed_oldest_first_and_sources_come_first() -> None:
    history = [
        Turn("user", "first question " * 50),
        Turn("assistant", "first answer " * 50),
        Turn("user", "second question"),
        Turn("assistant", "second answer"),
    ]
    source_tokens = count_tokens(f"[1] notes.pdf, page 1\n{HARBOUR.text}") + 2
    roomy = build_prompt("Where?", [HARBOUR], history, 8000)
    assert roomy.history == history
    tight = build_prompt("Where?", [HARBOUR], history, source_tokens + 40)
    assert tight.history == history[2:]
    assert [m["role"] for m in tight.messages] == ["system", "user", "assistant", "user"]
    # A source that does not fit is skipped; the next ones are renumbered.
    long = _source(1, "word " * 3000)
    prompt = build_prompt("Where?", [long, HARBOUR], [], 600)
    assert [(s.n, s.text) for s in prompt.sources] == [(1, HARBOUR.text)]


def test_an_answer_never_starts_its_history_without_its_question() -> None:
    history = [Turn("user", "question " * 100), Turn("assistant", "short answer")]
    prompt = build_prompt("And then?", [], history, 60)
    assert prompt.history == []


EMBEDDER = LocalE5Embedder()


def _answer(question: str, sources: list[Source]) -> tuple[str, Finished]:
    prompt = build_prompt(question, sources, [], 8000)
    provider = ExtractiveProvider("extractive", EMBEDDER)
    *pieces, finished = list(provider.stream(prompt, "ignored"))
    assert isinstance(finished, Finished)
    return "".join(str(p) for p in pieces), finished


def test_the_extractive_answer_says_what_it_is_and_quotes_with_citations() -> None:
    other = _source(2, "The glacier hides a quartz cave. Climbers reach it in summer.", "b.pdf")
    text, finished = _answer("When do fishermen light the lantern?", [HARBOUR, other])
    first_line, _, rest = text.partition("\n")
    assert first_line == HEADER["en"]
    assert "- Fishermen light it every evening. [1]" in rest
    assert "quartz" not in rest
    assert finished.usage.completion_tokens == count_tokens(text)
    assert ExtractiveProvider("extractive", EMBEDDER).model_for("gpt-4o-mini") == "extractive"


def test_the_extractive_answer_matches_digits_in_any_script_and_admits_a_miss() -> None:
    persian = _source(1, "کتابخانه در سال ۱۳۵۰ ساخته شد. باغ انار در شمال است.")
    text, _ = _answer("چه چیزی در سال 1350 ساخته شد؟", [persian])
    assert text.startswith(HEADER["fa"]) and "۱۳۵۰ ساخته شد. [1]" in text
    nothing, _ = _answer("What about zeppelins?", [])
    assert nothing == NOTHING_TO_ANSWER_FROM["en"]


def test_a_question_the_sources_do_not_cover_is_answered_not_covered() -> None:
    manual = _source(
        1,
        "Declares command to be a font switch which selects the font. "
        "The arguments encoding, family, series and shape are used to set, or reset.",
    )
    for question, language in [
        ("How do I reset the device?", "en"),
        ("رمز وای‌فای را چطور عوض کنم؟", "fa"),
    ]:
        text, _ = _answer(question, [manual])
        assert text == NOT_COVERED[language]
        assert "[1]" not in text


def test_the_extractive_answer_skips_fragments_repeats_and_abbreviation_cuts() -> None:
    text = (
        "ing the lantern from the old pier every night. "  # cut off at the start
        "Fishermen light the lantern, e.g. at dusk, from the old pier. "
        "Fishermen light the lantern, e.g. at dusk, from the old pier. "
        "The lantern burns whale oil. Fishermen light"  # cut off at the end
    )
    answer, _ = _answer("When do fishermen light the lantern?", [_source(1, text)])
    quotes = [line for line in answer.splitlines() if line.startswith("- ")]
    assert quotes[0] == "- Fishermen light the lantern, e.g. at dusk, from the old pier. [1]"
    assert len([q for q in quotes if "e.g. at dusk" in q]) == 1
    assert not any(q.startswith("- ing ") or q.endswith("Fishermen light [1]") for q in quotes)


def _quotes(answer: str) -> list[str]:
    return [line for line in answer.splitlines() if line.startswith("- ")]


def test_a_long_sentence_cut_by_the_chunks_edge_is_quoted_and_marked_cut() -> None:
    # The end of a chunk of the todonotes manual: its last sentence goes on in the next chunk.
    text = (
        "can be changed by options. Default values can be set by the color options when the "
        "package is loaded. The border color (default bordercolor=black) around the inserted "
        "text, the color behind the inserted text (default backgroundcolor=orange), the color "
        "of the inserted text (default textcolor=black) and the color of the line connecting "
        "the note to its location in the text (default"
    )
    answer, _ = _answer(
        "Which background color do inserted notes get by default?", [_source(1, text)]
    )
    quotes = " ".join(_quotes(answer))
    assert "backgroundcolor=orange" in quotes and "(default … [1]" in quotes
    assert "can be changed by options" not in quotes  # a short cut piece stays out


def test_persian_words_meet_in_their_inflected_forms() -> None:
    sentence = candidates(
        [source := _source(1, "هر فایل را در شاخهٔ قلم بگذارید و برنامه را اجرا کنید.")],
        [cut_source(source)],
    )[0]
    asked = content_words("فایل‌های قلم‌ها را با کدام برنامه‌ای پیدا کنم؟")
    assert {"فایلهای", "قلمها", "برنامهای"} <= sentence.holding(asked)
    assert stem_forms("قلم") == frozenset({"قلم"}) and "apples" in stem_forms("apples")


def test_a_persian_question_about_an_english_guide_quoting_persian_is_covered() -> None:
    # xepersian-hm's guide is English with Persian samples: a sample does not make the
    # question's Persian words "missing" from it.
    guide = _source(
        1,
        "3 Package loading and options Please note that xepersian-hm loads xepersian "
        "automatically, so you may only pass options to the package using the command "
        "\\PassOptionsToPackage before loading xepersian-hm.",
    )
    sample = _source(2, "For example: این یک متن نمونه است که کشیده دارد.")
    question = (
        "xepersian-hm خودش xepersian را بارگذاری می‌کند؛ پس تنظیمات xepersian را چطور به آن بدهم؟"
    )
    text, _ = _answer(question, [guide, sample])
    assert "\\PassOptionsToPackage" in " ".join(_quotes(text))


def test_the_sentence_that_names_the_fact_is_quoted_with_the_one_restating_the_question() -> None:
    manual = _source(
        1,
        "The printer has a duplex unit for two-sided printing. When the paper tray is empty, "
        "the printer stops printing. The display then shows error E-07 until the tray is "
        "refilled. Paper of 80 g/m² suits it best.",
    )
    answer, _ = _answer("What error does the printer show when its tray is empty?", [manual])
    quote = _quotes(answer)[0]
    assert "E-07" in quote
    assert quote.index("When the paper tray is empty") < quote.index("E-07")  # document order
    assert quote.endswith("[1]") and "duplex" not in quote
    persian = _source(
        1,
        "چاپگر واحد دورو برای چاپ دو رویه دارد. وقتی سینی کاغذ خالی شود، چاپگر چاپ را متوقف "
        "می‌کند. سپس روی صفحه خطای E-07 نمایش داده می‌شود تا سینی دوباره پر شود.",
    )
    answer, _ = _answer("وقتی سینی کاغذ خالی است چاپگر چه خطایی نشان می‌دهد؟", [persian])
    assert "E-07" in _quotes(answer)[0]


def test_a_sentence_that_announces_code_is_quoted_with_the_code() -> None:
    guide = _source(
        1,
        "Fonts are chosen in the preamble.\nTo load the package with Persian support, write:\n"
        "\\usepackage[bidi=basic]{xepersian}\nOther packages come before it.",
    )
    answer, _ = _answer("How do I load the package with Persian support?", [guide])
    quote = _quotes(answer)[0]
    assert quote.startswith("- To load the package with Persian support, write:")
    assert "`\\usepackage[bidi=basic]{xepersian}`" in quote
    # Asked about the code line itself, its explanation comes with it.
    answer, _ = _answer("What does \\usepackage[bidi=basic]{xepersian} do?", [guide])
    assert "write: `\\usepackage[bidi=basic]{xepersian}`" in _quotes(answer)[0]


def test_a_list_item_is_quoted_with_the_sentence_that_leads_the_list() -> None:
    guide = _source(
        1,
        "The harbour has three lights.\nThe lantern is lit when:\n- the fog horn sounds twice,"
        "\n- a ship is expected after dark,\n- the harbour master orders it.\nIt burns oil.",
    )
    answer, _ = _answer("Is the lantern lit when a ship is expected after dark?", [guide])
    quote = _quotes(answer)[0]
    assert quote.startswith("- The lantern is lit when:") and "a ship is expected" in quote


def test_code_and_bracketed_numbers_in_a_quote_are_not_citations() -> None:
    assert quoted("\\usefont{T1}[1]") == "`\\usefont{T1}[1]`"
    assert quoted("See reference [2] for details.") == "`See reference [2] for details.`"
    assert quoted("Plain prose stays as it is.") == "Plain prose stays as it is."


def _provider(standin: StandIn, retries: int = 2) -> OpenAIChatProvider:
    return OpenAIChatProvider(
        api_key="sk-test",
        base_url=standin.base_url,
        timeout=1.0,
        max_retries=retries,
        max_tokens=64,
        retry_pause=0.01,
    )


def test_the_provider_streams_pieces_and_reports_the_servers_usage(standin: StandIn) -> None:
    prompt = build_prompt("Where is the lantern?", [HARBOUR], [], 8000)
    *pieces, finished = list(_provider(standin).stream(prompt, "m"))
    assert pieces == pieces_of(DEFAULT_REPLY)
    assert finished == Finished("stop", TokenUsage(PROMPT_TOKENS_REPORTED, len(pieces)))
    assert standin.chat_requests[0]["max_tokens"] == 64
    assert standin.requests[0]["auth"] == "Bearer sk-test"


def test_the_provider_retries_only_before_the_first_piece(standin: StandIn) -> None:
    prompt = build_prompt("Where is the lantern?", [HARBOUR], [], 8000)
    standin.failures = [503, 429]
    assert "".join(str(p) for p in _provider(standin).stream(prompt, "m") if isinstance(p, str))
    assert len(standin.chat_requests) == 3
    standin.drop_after = 2
    with pytest.raises(ProviderUnavailable, match="broke off after 2 pieces"):
        list(_provider(standin).stream(prompt, "m"))
    assert len(standin.chat_requests) == 4  # not retried: words were already out
    standin.drop_after, standin.failures = None, [404]
    with pytest.raises(ProviderRejected, match="HTTP 404"):
        list(_provider(standin).stream(prompt, "m"))
    standin.failures = [500, 500]
    with pytest.raises(ProviderUnavailable, match="busy or failing"):
        list(_provider(standin, retries=1).stream(prompt, "m"))


@pytest.fixture
def redis_client(redis_database: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_database) as client:
        yield client


def _stream_texts(client: redis.Redis, job_id: uuid.UUID) -> list[tuple[str, str]]:
    return [
        (fields[b"event"].decode(), fields[b"data"].decode())
        for _, fields in client.xrange(stream_key(job_id))
    ]


def test_the_writer_sends_the_first_piece_at_once_and_batches_a_burst(
    redis_client: redis.Redis,
) -> None:
    job_id = uuid.uuid4()
    writer = EventWriter(redis_client, job_id, retention_seconds=60)
    burst = [f"w{i} " for i in range(200)]
    relayed = relay_generation(iter([*burst, Finished("stop", TokenUsage(1, 2))]), writer)
    assert relayed.text == "".join(burst) and relayed.finished is not None
    deltas = [data for event, data in _stream_texts(redis_client, job_id) if event == "delta"]
    assert deltas[0] == '{"text":"w0 "}'
    assert 1 < len(deltas) < len(burst)
    assert 0 < redis_client.ttl(stream_key(job_id)) <= 60


def test_a_cancel_stops_the_relay_even_while_the_provider_is_silent(
    redis_client: redis.Redis,
) -> None:
    job_id = uuid.uuid4()
    release = threading.Event()

    def stalled() -> Iterator[str | Finished]:
        yield "first "
        release.wait(timeout=30)  # a provider that says nothing more
        yield "never "

    writer = EventWriter(redis_client, job_id, retention_seconds=60)
    threading.Timer(0.3, lambda: redis_client.set(cancel_key(job_id), 1)).start()
    relayed = relay_generation(stalled(), writer)
    release.set()
    assert relayed.cancelled and relayed.text == "first "
    assert _stream_texts(redis_client, job_id) == [("delta", '{"text":"first "}')]


def test_a_provider_error_ends_the_relay_with_the_error(redis_client: redis.Redis) -> None:
    def failing() -> Iterator[str | Finished]:
        yield "partial "
        raise ProviderUnavailable("gone")

    relayed = relay_generation(failing(), EventWriter(redis_client, uuid.uuid4(), 60))
    assert isinstance(relayed.error, ProviderUnavailable) and relayed.text == "partial "


def test_the_prompt_is_fitted_to_the_models_window_with_room_for_the_answer() -> None:
    sources = [_source(n, f"Passage {n}: " + "harbour lantern " * 150) for n in range(1, 7)]
    roomy = build_prompt("Where is the lantern?", sources, [], 8000)
    assert len(roomy.sources) == 6
    fitted = build_prompt(
        "Where is the lantern?", sources, [], 8000, window=2048, answer_tokens=512
    )
    assert 0 < len(fitted.sources) < 6
    assert fitted.tokens + 512 <= 2048 * (1 - WINDOW_MARGIN)
    with pytest.raises(ContextOverflow, match="MODEL_CONTEXT_TOKENS"):
        build_prompt("Where? " * 400, sources, [], 8000, window=1024, answer_tokens=512)
