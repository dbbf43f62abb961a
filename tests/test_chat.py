"""Chat on the embedded default (the extractive answerer) through a real uvicorn server, a real
worker, Postgres and Redis, read by a real SSE client."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis
from httpx_sse import connect_sse
from sqlalchemy import Engine, text

from core.settings import Settings
from pipeline.extractive import HEADER, NOTHING_TO_ANSWER_FROM
from standins.chat_client import ask, bare_client, read_stream
from standins.documents import english_pdf, filler, persian_filler, persian_pdf
from tests.ingest_helpers import colleague_client, ingest, tenant_client, wait_for_job
from tests.stack import LiveServer, Services, settings_for
from transport.events import stream_key

FA_PAGES = [
    "کتابخانه‌ی مرکزی شهر در سال ۱۳۵۰ ساخته شد. این کتابخانه هزاران کتاب فارسی دارد. "
    + persian_filler(1, 4),
    "باغ انار در شمال روستا است. کشاورزان در پاییز انار می‌چینند و آب انار می‌گیرند. "
    + persian_filler(2, 4),
]
EN_PAGES = [
    "The copper lantern hangs in the old harbour. Fishermen light it every evening. "
    + filler(1, 4),
    "The glacier above the village hides a quartz cave. Climbers reach it in summer. "
    + filler(2, 4),
]


@pytest.fixture(scope="module")
def english_client(
    server: LiveServer, engine: Engine, api_settings: Settings
) -> Iterator[httpx.Client]:
    """A tenant with one ready English document, shared by the tests that only read."""
    with tenant_client(engine, api_settings, server.url) as client:
        ingest(client, english_pdf(EN_PAGES), "harbour.pdf")
        yield client


def test_a_persian_question_is_answered_from_a_persian_pdf_over_sse(
    client: httpx.Client, server: LiveServer
) -> None:
    document = ingest(client, persian_pdf(FA_PAGES), "کتابخانه.pdf")
    started = ask(client, "کتابخانه‌ی مرکزی در چه سالی ساخته شد؟")
    assert set(started) == {"job_id", "session_id", "message_id", "stream_url"}
    # The stream URL alone is enough, as for a browser's EventSource.
    with bare_client(server.url) as browser:
        answer = read_stream(browser, started["stream_url"])
    assert answer.names[:2] == ["start", "citations"]
    assert answer.names[-1] == "end" and "delta" in answer.names
    assert answer.events[0].data == {
        "job_id": started["job_id"],
        "session_id": started["session_id"],
        "message_id": started["message_id"],
        "model": "extractive",
    }
    ids = [event.id for event in answer.events]
    assert all(ids) and len(set(ids)) == len(ids)
    # Honest about what it is, in the question's language, and quoting the right sentence.
    assert answer.text.startswith(HEADER["fa"])
    assert "۱۳۵۰" in answer.text and "[1]" in answer.text
    citations = answer.last("citations")
    assert citations[0]["document_id"] == document["id"]
    assert citations[0]["filename"] == "کتابخانه.pdf" and citations[0]["page_start"] == 1
    assert [c["n"] for c in citations] == list(range(1, len(citations) + 1))
    end = answer.last("end")
    assert end["finish_reason"] == "stop"
    usage = end["usage"]
    assert usage["completion_tokens"] > 0 and usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    saved = client.get(f"/v1/sessions/{started['session_id']}/messages").json()
    question, reply = saved["messages"]
    assert (
        question["role"] == "user" and question["content"] == "کتابخانه‌ی مرکزی در چه سالی ساخته شد؟"
    )
    assert reply["id"] == started["message_id"] and reply["status"] == "complete"
    assert reply["content"] == answer.text
    assert reply["citations"] == citations and reply["model"] == "extractive"
    assert (reply["prompt_tokens"], reply["completion_tokens"]) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
    )
    job = wait_for_job(client, started["job_id"])
    assert job["status"] == "succeeded" and job["kind"] == "chat"


def test_a_tenant_with_no_ready_documents_is_told_there_is_nothing_to_answer_from(
    client: httpx.Client,
) -> None:
    started = ask(client, "What does the contract say about notice periods?")
    answer = read_stream(client, started["stream_url"])
    assert answer.text == NOTHING_TO_ANSWER_FROM["en"]
    assert answer.last("citations") == []
    assert answer.last("end")["finish_reason"] == "stop"


def test_a_late_client_gets_the_whole_answer_and_can_resume_anywhere(
    english_client: httpx.Client,
) -> None:
    started = ask(english_client, "When do fishermen light the lantern?")
    assert wait_for_job(english_client, started["job_id"])["status"] == "succeeded"
    whole = read_stream(english_client, started["stream_url"])
    assert whole.names[0] == "start" and whole.names[-1] == "end"
    assert "Fishermen light it every evening" in whole.text
    for cut in range(1, len(whole.events)):
        rest = read_stream(
            english_client, started["stream_url"], last_event_id=whole.events[cut - 1].id
        )
        assert rest.events == whole.events[cut:]


def test_a_follow_up_in_the_same_session_keeps_the_history(english_client: httpx.Client) -> None:
    first = ask(english_client, "Where is the quartz cave?")
    read_stream(english_client, first["stream_url"])
    second = ask(english_client, "When do climbers reach it?", session_id=first["session_id"])
    assert second["session_id"] == first["session_id"]
    read_stream(english_client, second["stream_url"])
    messages = english_client.get(f"/v1/sessions/{first['session_id']}/messages").json()
    roles = [m["role"] for m in messages["messages"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert messages["messages"][2]["content"] == "When do climbers reach it?"
    sessions = english_client.get("/v1/sessions").json()["items"]
    assert sessions[0]["id"] == first["session_id"]
    assert sessions[0]["title"] == "Where is the quartz cave?"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"message": ""}, "message"),
        ({"message": "   \n "}, "message"),
        ({"message": "x" * 4001}, "message"),
        ({}, "message"),
        ({"message": "hi", "model": "gpt-4o-mini"}, "model"),
        ({"message": "hi", "session_id": "not-an-id"}, "session_id"),
        ({"message": "hi", "session_id": str(uuid.uuid4())}, "session_id"),
        ({"message": "hi", "document_ids": []}, "document_ids"),
        ({"message": "hi", "document_ids": ["nope"]}, "document_ids"),
        ({"message": "hi", "document_ids": [str(uuid.uuid4())]}, "document_ids"),
        ({"message": "hi", "colour": "red"}, "colour"),
    ],
)
def test_bad_chat_requests_are_422_naming_the_field(
    english_client: httpx.Client, body: dict[str, object], field: str
) -> None:
    response = english_client.post("/v1/chat", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_sessions_and_answers_belong_to_their_user(
    english_client: httpx.Client, engine: Engine, api_settings: Settings, server: LiveServer
) -> None:
    started = ask(english_client, "Who lights the copper lantern?")
    session_id, job_id = started["session_id"], started["job_id"]
    read_stream(english_client, started["stream_url"])
    with colleague_client(engine, api_settings, english_client) as colleague:
        assert colleague.get(f"/v1/sessions/{session_id}/messages").status_code == 404
        assert colleague.delete(f"/v1/sessions/{session_id}").status_code == 404
        assert colleague.get(f"/v1/jobs/{job_id}").status_code == 404
        assert colleague.post(f"/v1/jobs/{job_id}/cancel").status_code == 404
        assert colleague.get(f"/v1/chat/{job_id}/stream").status_code == 404
        assert colleague.get("/v1/sessions").json()["items"] == []
        reused = colleague.post("/v1/chat", json={"message": "hi", "session_id": session_id})
        assert reused.status_code == 422 and reused.json()["field"] == "session_id"
    with tenant_client(engine, api_settings, server.url) as stranger:
        assert stranger.get(f"/v1/sessions/{session_id}/messages").status_code == 404
        assert stranger.get(f"/v1/chat/{job_id}/stream").status_code == 404
        assert stranger.get(f"/v1/jobs/{job_id}").status_code == 404


def test_a_stream_token_opens_only_its_own_job_stream(
    english_client: httpx.Client, server: LiveServer
) -> None:
    first = ask(english_client, "Who lights the copper lantern?")
    second = ask(english_client, "Where is the quartz cave?")
    token = first["stream_url"].split("token=", 1)[1]
    with bare_client(server.url) as browser:
        other_job = browser.get(f"/v1/chat/{second['job_id']}/stream", params={"token": token})
        assert other_job.status_code == 403
        assert "another job" in other_job.json()["detail"]
        as_bearer = browser.get(
            "/v1/files",
            headers={
                "Authorization": f"Bearer {token}",
                "X-Tenant-ID": english_client.headers["X-Tenant-ID"],
            },
        )
        assert as_bearer.status_code == 401
        assert "not an access token" in as_bearer.json()["detail"]
        tampered = browser.get(first["stream_url"][:-3] + "abc")
        assert tampered.status_code == 401
        assert browser.get(f"/v1/chat/{first['job_id']}/stream").status_code == 401
        wrong_tenant = browser.get(first["stream_url"], headers={"X-Tenant-ID": "someone-else"})
        assert wrong_tenant.status_code == 403
    # The bearer header works as well as the token.
    answer = read_stream(english_client, f"/v1/chat/{first['job_id']}/stream")
    assert answer.names[-1] == "end"


def test_a_stream_past_its_retention_is_gone_and_bad_event_ids_are_refused(
    english_client: httpx.Client, api_settings: Settings, engine: Engine
) -> None:
    started = ask(english_client, "Who lights the copper lantern?")
    answer = read_stream(english_client, started["stream_url"])
    last = answer.events[-1].id
    milliseconds, sequence = map(int, last.split("-"))
    for never_given in ["yesterday", "99999999999999-0", f"{milliseconds}-{sequence + 1}"]:
        bad = english_client.get(started["stream_url"], headers={"Last-Event-ID": never_given})
        assert bad.status_code == 422 and bad.json()["field"] == "Last-Event-ID", never_given
    # Read to its end already: a finished answer says so at once, and EventSource stops.
    done = english_client.get(started["stream_url"], headers={"Last-Event-ID": last})
    assert done.status_code == 204 and done.content == b""
    with redis.Redis.from_url(api_settings.redis_url or "") as r:
        assert r.ttl(stream_key(started["job_id"])) > 0
        r.delete(stream_key(started["job_id"]))  # as a Redis reset or flush would
    lost = english_client.get(started["stream_url"])
    with engine.begin() as conn:  # as if it had ended before the retention window
        conn.execute(
            text("UPDATE jobs SET finished_at = now() - interval '2 hours' WHERE id = :j"),
            {"j": started["job_id"]},
        )
    expired = english_client.get(started["stream_url"])
    saved = f"read the saved answer with GET /v1/sessions/{started['session_id']}/messages"
    assert lost.status_code == expired.status_code == 410
    assert lost.json()["detail"] == (
        "the live stream of this answer was lost (the server's Redis was reset or flushed); "
        + saved
    )
    assert expired.json()["detail"] == (
        f"the live stream of this answer was kept for {api_settings.stream_retention_seconds} s "
        "and has expired; " + saved
    )


def test_deleting_a_session_removes_its_messages_jobs_and_streams(
    english_client: httpx.Client, engine: Engine, api_settings: Settings
) -> None:
    started = ask(english_client, "Where is the quartz cave?")
    read_stream(english_client, started["stream_url"])
    spent = english_client.get("/v1/usage").json()["last_24h"]["total_tokens"]
    assert english_client.delete(f"/v1/sessions/{started['session_id']}").status_code == 204
    assert english_client.get(f"/v1/jobs/{started['job_id']}").status_code == 404
    assert english_client.get(started["stream_url"]).status_code == 404
    with redis.Redis.from_url(api_settings.redis_url or "") as r:
        assert not r.exists(stream_key(started["job_id"]))
    assert english_client.get(f"/v1/sessions/{started['session_id']}/messages").status_code == 404
    ids = [s["id"] for s in english_client.get("/v1/sessions").json()["items"]]
    assert started["session_id"] not in ids
    with engine.connect() as conn:
        left = conn.execute(
            text("SELECT count(*) FROM messages WHERE session_id = :s"),
            {"s": started["session_id"]},
        ).scalar_one()
        jobs = conn.execute(
            text("SELECT count(*) FROM jobs WHERE id = :j"), {"j": started["job_id"]}
        ).scalar_one()
    assert left == 0 and jobs == 0
    # What was spent (the answer, the question's embedding) stays counted.
    assert english_client.get("/v1/usage").json()["last_24h"]["total_tokens"] == spent
    assert english_client.get(f"/v1/sessions/{uuid.uuid4()}/messages").status_code == 404
    assert english_client.delete("/v1/sessions/not-an-id").status_code == 404


def test_a_stream_token_counts_against_its_users_rate_limit(
    english_client: httpx.Client, server: LiveServer
) -> None:
    started = ask(english_client, "Where is the quartz cave?")
    read_stream(english_client, started["stream_url"])
    before = int(english_client.get("/v1/sessions").headers["RateLimit-Remaining"])
    with bare_client(server.url) as browser:
        replay = browser.get(started["stream_url"])
    assert replay.status_code == 200
    assert int(replay.headers["RateLimit-Remaining"]) == before - 1


def test_deleting_a_session_ends_the_stream_of_an_answer_no_worker_took(
    services: Services, engine: Engine, redis_database: str
) -> None:
    settings = settings_for(
        services, REDIS_URL=redis_database
    )  # no worker serves these queues: the answer stays queued
    events = []
    with LiveServer(settings) as server, tenant_client(engine, settings, server.url) as client:
        started = ask(client, "Where is the quartz cave?")
        with connect_sse(client, "GET", started["stream_url"], timeout=10) as source:
            for sse in source.iter_sse():
                if sse.event == "start":  # a reader is following the answer: delete it now
                    assert client.delete(f"/v1/sessions/{started['session_id']}").status_code == 204
                if sse.data:
                    events.append((sse.event, json.loads(sse.data)))
                if sse.event in ("end", "error"):
                    break
        job = client.get(f"/v1/jobs/{started['job_id']}")
        again = client.get(started["stream_url"])
    assert [name for name, _ in events] == ["start", "end"]
    assert events[-1][1]["finish_reason"] == "cancelled"
    assert job.status_code == 404 and again.status_code == 404
    with redis.Redis.from_url(settings.redis_url or "") as r:
        assert 0 < r.ttl(stream_key(started["job_id"])) <= 5  # kept a moment for such readers
