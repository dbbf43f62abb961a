"""Chat through an OpenAI-compatible provider (the stand-in, speaking the real wire protocol):
the full flow, resuming, cancelling, provider failures and history, over real SSE."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import redis
from sqlalchemy import Engine, text

from core.settings import Settings
from pipeline.chunking import count_tokens
from standins.chat_client import ask, read_stream
from standins.documents import english_pdf, filler
from standins.model_server import DEFAULT_REPLY, PROMPT_TOKENS_REPORTED, StandIn, pieces_of
from tests.ingest_helpers import colleague_client, ingest, tenant_client, wait_for_job
from tests.stack import LiveServer, OwnDatabase, Services, WorkerProcess
from transport.events import stream_key

LONG_REPLY = " ".join(f"word{i}" for i in range(60)) + " [1]."


@pytest.fixture(scope="module")
def engine(fleet: OwnDatabase) -> Engine:
    return fleet.engine


@pytest.fixture(scope="module")
def llm_settings(services: Services, standin: StandIn, fleet: OwnDatabase) -> Settings:
    """The module's workers answer with the stand-in: a database and queues of their own
    (`fleet`), which the run's worker never sees."""
    return fleet.settings(
        services,
        OPENAI_BASE_URL=standin.base_url,
        OPENAI_TIMEOUT_SECONDS="1",
        OPENAI_MAX_RETRIES="2",
        ALLOWED_MODELS="gpt-4o-mini,standin-large",
        RATE_LIMIT_PER_MINUTE="100000",
    )


@pytest.fixture(scope="module")
def server(llm_settings: Settings, engine: Engine) -> Iterator[LiveServer]:
    with WorkerProcess(llm_settings, threads=4), LiveServer(llm_settings) as live:
        yield live


@pytest.fixture(scope="module")
def client(server: LiveServer, engine: Engine, llm_settings: Settings) -> Iterator[httpx.Client]:
    with tenant_client(engine, llm_settings, server.url) as client:
        pages = ["The copper lantern hangs in the old harbour. Fishermen light it every evening. "
                 + filler(3, 4)]  # fmt: skip
        ingest(client, english_pdf(pages), "harbour.pdf")
        yield client


def _messages(client: httpx.Client, session_id: str) -> list[dict[str, object]]:
    body = client.get(f"/v1/sessions/{session_id}/messages").json()
    messages: list[dict[str, object]] = body["messages"]
    return messages


def _usage_rows(engine: Engine, job_id: str) -> list[tuple[str, str, int, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT kind, model, prompt_tokens, completion_tokens FROM usage_records "
                "WHERE job_id = :j AND kind = 'chat'"
            ),
            {"j": job_id},
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def test_an_answer_streams_from_the_provider_and_its_reported_usage_is_saved(
    client: httpx.Client, standin: StandIn, engine: Engine
) -> None:
    started = ask(client, "When do fishermen light the lantern?", model="standin-large")
    answer = read_stream(client, started["stream_url"])
    assert answer.names[:2] == ["start", "citations"] and answer.names[-1] == "end"
    assert answer.events[0].data["model"] == "standin-large"
    assert answer.text == DEFAULT_REPLY
    assert answer.last("citations")[0]["filename"] == "harbour.pdf"
    end = answer.last("end")
    pieces = len(pieces_of(DEFAULT_REPLY))
    assert end == {
        "finish_reason": "stop",
        "usage": {
            "prompt_tokens": PROMPT_TOKENS_REPORTED,
            "completion_tokens": pieces,
            "total_tokens": PROMPT_TOKENS_REPORTED + pieces,
        },
    }
    request = standin.chat_requests[-1]
    assert request["model"] == "standin-large" and request["stream"] is True
    assert request["stream_options"] == {"include_usage": True}
    system, user = request["messages"][0], request["messages"][-1]
    assert system["role"] == "system" and "only the numbered sources" in system["content"]
    assert "[1] harbour.pdf, page 1" in user["content"]
    assert user["content"].endswith("Question: When do fishermen light the lantern?")
    reply = _messages(client, started["session_id"])[1]
    assert reply["content"] == answer.text and reply["status"] == "complete"
    assert (reply["prompt_tokens"], reply["completion_tokens"]) == (PROMPT_TOKENS_REPORTED, pieces)
    assert _usage_rows(engine, started["job_id"]) == [
        ("chat", "standin-large", PROMPT_TOKENS_REPORTED, pieces)
    ]


def test_usage_adds_up_what_the_provider_reported(
    client: httpx.Client, standin: StandIn, engine: Engine, llm_settings: Settings
) -> None:
    questions = ["When do fishermen light the lantern?", "Where does the lantern hang?"]
    standin.reported_usage.clear()
    with colleague_client(engine, llm_settings, client) as colleague:
        for question in questions:
            read_stream(colleague, ask(colleague, question, model="standin-large")["stream_url"])
        usage = colleague.get("/v1/usage").json()
    assert [model for model, _, _ in standin.reported_usage] == ["standin-large"] * 2
    prompt = sum(p for _, p, _ in standin.reported_usage)
    completion = sum(c for _, _, c in standin.reported_usage)
    embedded = sum(count_tokens(q) for q in questions)
    for window in ("last_24h", "last_7d"):
        assert usage[window]["by_model"] == {
            "standin-large": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "requests": 2,
                "estimated_tokens": 0,  # the provider's own figures
            },
            llm_settings.embedding_model_name: {
                "prompt_tokens": embedded,
                "completion_tokens": 0,
                "total_tokens": embedded,
                "requests": 2,
                "estimated_tokens": embedded,  # the local embedder: tiktoken's count
            },
        }
        assert usage[window]["total_tokens"] == prompt + completion + embedded


def test_a_server_that_reports_no_usage_is_counted_with_tiktoken(
    client: httpx.Client, standin: StandIn
) -> None:
    before = client.get("/v1/usage").json()["last_24h"]["by_kind"]["chat"]
    assert before["estimated_tokens"] == 0  # every answer so far came with the provider's usage
    standin.report_usage = False
    answer = read_stream(client, ask(client, "When do fishermen light the lantern?")["stream_url"])
    usage = answer.last("end")["usage"]
    assert usage["prompt_tokens"] not in (0, PROMPT_TOKENS_REPORTED)
    assert usage["completion_tokens"] == count_tokens(DEFAULT_REPLY)
    # /v1/usage says which of the tokens are such estimates.
    after = client.get("/v1/usage").json()["last_24h"]["by_kind"]["chat"]
    assert after["estimated_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert after["total_tokens"] - before["total_tokens"] == after["estimated_tokens"]


def test_a_client_that_reconnects_with_last_event_id_gets_exactly_the_rest(
    client: httpx.Client, standin: StandIn
) -> None:
    standin.reply, standin.piece_delay = LONG_REPLY, 0.02
    started = ask(client, "When do fishermen light the lantern?")
    first = read_stream(client, started["stream_url"], stop_after_deltas=3)
    assert first.names[-1] == "delta"
    rest = read_stream(client, started["stream_url"], last_event_id=first.events[-1].id)
    assert rest.names[-1] == "end" and "start" not in rest.names
    ids = [e.id for e in first.events + rest.events]
    assert len(set(ids)) == len(ids)
    streamed = first.text + rest.text
    assert streamed == LONG_REPLY
    assert _messages(client, started["session_id"])[1]["content"] == streamed


def test_cancelling_stops_the_generation_and_keeps_the_partial_answer(
    client: httpx.Client, standin: StandIn, engine: Engine
) -> None:
    standin.reply, standin.piece_delay = LONG_REPLY, 0.05
    started = ask(client, "When do fishermen light the lantern?")
    read_stream(client, started["stream_url"], stop_after_deltas=2)
    cancelled = client.post(f"/v1/jobs/{started['job_id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    answer = read_stream(client, started["stream_url"])
    end = answer.last("end")
    assert end["finish_reason"] == "cancelled"
    assert 0 < len(answer.text) < len(LONG_REPLY)
    reply = _messages(client, started["session_id"])[1]
    assert reply["status"] == "cancelled" and reply["content"] == answer.text
    assert reply["completion_tokens"] == end["usage"]["completion_tokens"] > 0
    assert len(_usage_rows(engine, started["job_id"])) == 1
    again = client.post(f"/v1/jobs/{started['job_id']}/cancel")
    assert again.status_code == 409 and "already been cancelled" in again.json()["detail"]


def test_deleting_a_session_mid_answer_stops_the_worker_and_removes_job_and_stream(
    client: httpx.Client, standin: StandIn, llm_settings: Settings, engine: Engine
) -> None:
    standin.reply, standin.piece_delay = LONG_REPLY, 0.05

    def chat_tokens() -> int:
        kinds = client.get("/v1/usage").json()["last_24h"]["by_kind"]
        return int(kinds.get("chat", {}).get("total_tokens", 0))

    before = chat_tokens()
    started = ask(client, "When do fishermen light the lantern?")
    read_stream(client, started["stream_url"], stop_after_deltas=2)
    assert client.delete(f"/v1/sessions/{started['session_id']}").status_code == 204
    assert client.get(f"/v1/jobs/{started['job_id']}").status_code == 404
    key = stream_key(started["job_id"])
    with redis.Redis.from_url(llm_settings.redis_url or "") as r:
        deadline = time.monotonic() + 10
        while r.exists(key) and time.monotonic() < deadline:
            time.sleep(0.1)  # the worker notices within its cancel poll and removes it
        assert not r.exists(key)
    # The tokens the half answer spent are counted, though its job is gone.
    assert chat_tokens() > before


def test_a_provider_that_drops_the_connection_mid_answer_ends_with_an_error_event(
    client: httpx.Client, standin: StandIn, engine: Engine
) -> None:
    standin.drop_after = 4
    started = ask(client, "When do fishermen light the lantern?")
    answer = read_stream(client, started["stream_url"])
    error = answer.last("error")
    assert error["code"] == "provider_unavailable"
    assert "broke off after 4 pieces" in error["message"]
    assert answer.text == "".join(pieces_of(DEFAULT_REPLY)[:4])
    job = wait_for_job(client, started["job_id"])
    assert job["status"] == "failed" and "broke off" in job["error"]
    reply = _messages(client, started["session_id"])[1]
    assert reply["status"] == "failed" and reply["content"] == answer.text
    assert len(standin.chat_requests) >= 1
    assert len(_usage_rows(engine, started["job_id"])) == 1


def test_a_provider_stalling_past_its_timeout_fails_the_answer_clearly(
    client: httpx.Client, standin: StandIn
) -> None:
    standin.stall_after, standin.stall_seconds = 2, 3.0
    answer = read_stream(client, ask(client, "When do fishermen light the lantern?")["stream_url"])
    assert answer.last("error")["code"] == "provider_unavailable"
    assert "nothing arrived for 1 s" in answer.last("error")["message"]


def test_provider_errors_before_the_first_token_are_retried_then_reported(
    client: httpx.Client, standin: StandIn
) -> None:
    standin.failures = [500, 429]
    retried = read_stream(client, ask(client, "When do fishermen light the lantern?")["stream_url"])
    assert retried.text == DEFAULT_REPLY and not standin.failures
    standin.failures = [401]
    refused = read_stream(client, ask(client, "When do fishermen light the lantern?")["stream_url"])
    assert "delta" not in refused.names
    assert refused.last("error")["code"] == "provider_rejected"
    assert "HTTP 401" in refused.last("error")["message"]


def test_a_follow_up_question_carries_the_session_history_to_the_model(
    client: httpx.Client, standin: StandIn
) -> None:
    first = ask(client, "When do fishermen light the lantern?")
    read_stream(client, first["stream_url"])
    standin.reply = "Every evening [1]."
    second = ask(client, "And who does it?", session_id=first["session_id"])
    read_stream(client, second["stream_url"])
    messages = standin.chat_requests[-1]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert messages[1]["content"] == "When do fishermen light the lantern?"
    assert messages[2]["content"] == DEFAULT_REPLY
    assert messages[3]["content"].endswith("Question: And who does it?")


def test_a_persian_question_gets_persian_instructions(
    client: httpx.Client, standin: StandIn
) -> None:
    read_stream(client, ask(client, "ماهیگیران کی فانوس را روشن می‌کنند؟")["stream_url"])
    system = standin.chat_requests[-1]["messages"][0]["content"]
    assert "فقط از منابع شماره‌دار" in system
    assert standin.chat_requests[-1]["messages"][-1]["content"].startswith("منابع:")


def test_a_queued_job_can_be_cancelled_and_its_stream_sends_keep_alives_within_limits(
    services: Services,
    standin: StandIn,
    engine: Engine,
    fleet: OwnDatabase,
    redis_database: str,
) -> None:
    """No worker serves these queues: the job stays queued while the stream waits."""
    settings = fleet.settings(
        services,
        REDIS_URL=redis_database,
        OPENAI_BASE_URL=standin.base_url,
        SSE_KEEPALIVE_SECONDS="0.2",
        MAX_STREAMS_PER_PROCESS="1",
        RATE_LIMIT_PER_MINUTE="100000",
    )
    with LiveServer(settings) as server, tenant_client(engine, settings, server.url) as client:
        started = ask(client, "Is anyone there?")
        lines: list[str] = []
        with client.stream("GET", started["stream_url"]) as response:
            reading = response.iter_lines()  # kept: dropping it would hang up
            for line in reading:
                lines.append(line)
                if line == ": keep-alive":
                    break
            # This server relays one stream at a time: a second one is turned away for now.
            busy = client.get(started["stream_url"])
            assert busy.status_code == 503 and busy.headers["Retry-After"]
        assert lines[0] == "retry: 1000" and lines[1].startswith("id: ")
        assert lines[2] == "event: start"
        assert wait_for_job(client, started["job_id"], until=("queued",))["status"] == "queued"
        time.sleep(0.1)
        cancelled = client.post(f"/v1/jobs/{started['job_id']}/cancel")
        assert cancelled.status_code == 200
        answer = read_stream(client, started["stream_url"])
        assert answer.names == ["start", "end"]
        assert answer.last("end")["finish_reason"] == "cancelled"
        reply = _messages(client, started["session_id"])[1]
        assert reply["status"] == "cancelled" and reply["content"] == ""


@pytest.mark.parametrize("overflow", ["error", "empty"])
def test_a_prompt_over_the_models_context_is_not_retried_and_says_what_to_change(
    client: httpx.Client, standin: StandIn, engine: Engine, overflow: str
) -> None:
    """OpenAI's 400 context_length_exceeded, or llama.cpp's 200 with an empty stream."""
    standin.context_tokens, standin.overflow = 50, overflow
    asked = len(standin.chat_requests)
    started = ask(client, "When do fishermen light the lantern?")
    answer = read_stream(client, started["stream_url"])
    error = answer.last("error")
    assert error["code"] == "context_overflow"
    assert "does not fit the model's context window" in error["message"]
    assert "MODEL_CONTEXT_TOKENS" in error["message"]
    assert len(standin.chat_requests) == asked + 1  # never retried
    job = wait_for_job(client, started["job_id"])
    assert job["status"] == "failed" and "MODEL_CONTEXT_TOKENS" in job["error"]


def test_a_model_that_stops_at_once_is_an_answer_that_says_so(
    client: httpx.Client, standin: StandIn
) -> None:
    standin.reply = ""
    started = ask(client, "When do fishermen light the lantern?")
    answer = read_stream(client, started["stream_url"])
    assert "delta" not in answer.names
    error = answer.last("error")
    assert error["code"] == "empty_answer"
    assert "finished without a word (finish reason: stop)" in error["message"]
    reply = _messages(client, started["session_id"])[1]
    assert reply["status"] == "failed" and reply["content"] == ""
    assert wait_for_job(client, started["job_id"])["error"] == error["message"]
