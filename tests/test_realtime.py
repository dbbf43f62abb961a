"""Real time at scale, through real uvicorn, Redis, Postgres and workers: job progress as
events, one Redis reader per API process, two API processes behind one answer, and the
original WebSocket contract."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from httpx_sse import connect_sse
from sqlalchemy import Engine
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from bootstrap import REDIS_POOL_SIZE
from core.settings import Settings
from standins.chat_client import Answer, Event, ask, bare_client, read_stream
from standins.documents import english_pdf, filler
from standins.model_server import StandIn
from tests.ingest_helpers import colleague_client, ingest, tenant_client, upload
from tests.stack import LiveServer, OwnDatabase, Services, WorkerProcess, api_process
from tools.embedded import free_port
from transport import hub as hub_module
from transport.events import NOTHING_SPENT, Delta, End, EventWriter, stream_key
from transport.hub import StreamHub

SLOW_REPLY = " ".join(f"word{i}" for i in range(40)) + " [1]."

pytestmark = pytest.mark.standin(reply=SLOW_REPLY)


@pytest.fixture(scope="module")
def engine(fleet: OwnDatabase) -> Engine:
    return fleet.engine


@pytest.fixture(scope="module")
def live_settings(services: Services, standin: StandIn, fleet: OwnDatabase) -> Settings:
    return fleet.settings(
        services,
        OPENAI_BASE_URL=standin.base_url,
        RATE_LIMIT_PER_MINUTE="100000",
        MAX_STREAMS_PER_USER="100",  # sixty readers of one answer share one reader here
        # Long enough that a job stream could not keep up by looking at its job on each
        # keep-alive: its progress must come from Postgres' notices.
        SSE_KEEPALIVE_SECONDS="30",
    )


@dataclass(frozen=True)
class ApiProcess:
    """A second API: a real uvicorn process, the Procfile's command, on the same stack."""

    url: str


@pytest.fixture(scope="module")
def servers(live_settings: Settings, engine: Engine) -> Iterator[tuple[LiveServer, ApiProcess]]:
    """Two API processes on one database and Redis (this one's, under coverage, and one of its
    own), and a worker."""
    port = free_port()
    with (
        WorkerProcess(live_settings, threads=4),
        LiveServer(live_settings) as first,
        api_process(live_settings, port),
    ):
        yield first, ApiProcess(f"http://127.0.0.1:{port}")


@pytest.fixture(scope="module")
def client(
    servers: tuple[LiveServer, ApiProcess], engine: Engine, live_settings: Settings
) -> Iterator[httpx.Client]:
    with tenant_client(engine, live_settings, servers[0].url) as client:
        ingest(client, english_pdf(["The copper lantern hangs in the harbour. " + filler(3, 4)]))
        yield client


def _events(client: httpx.Client, url: str, headers: dict[str, str] | None = None) -> list[Any]:
    seen = []
    with connect_sse(client, "GET", url, headers=headers or {}, timeout=60) as source:
        assert source.response.status_code == 200, source.response.read()
        for sse in source.iter_sse():
            if sse.data:
                seen.append((sse.event, sse.id, json.loads(sse.data)))
            if sse.event == "end":
                break
    return seen


# ---- job progress as events --------------------------------------------------------------------


def test_an_upload_is_followed_by_its_events_without_polling(
    client: httpx.Client, servers: tuple[LiveServer, ApiProcess]
) -> None:
    response = upload(client, english_pdf([filler(40 + n, 8) for n in range(40)]), "forty.pdf")
    assert response.status_code == 202
    job = response.json()["job"]
    assert job["events_url"].startswith(f"/v1/jobs/{job['id']}/events?token=")
    with bare_client(servers[1].url) as browser:  # the URL alone, as EventSource has it
        seen = _events(browser, job["events_url"])
    names = [name for name, _, _ in seen]
    assert names[-1] == "end" and set(names[:-1]) == {"progress"}
    assert seen[-1][2] == {"job_id": job["id"], "status": "succeeded", "error": None}
    stages = [data["stage"] for name, _, data in seen if name == "progress"]
    assert len(stages) >= 3 and "embedding" in stages, seen
    ids = [int(event_id) for _, event_id, _ in seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    # A finished job answers its end at once; the end already seen is 204.
    again = _events(client, f"/v1/jobs/{job['id']}/events")
    assert [name for name, _, _ in again] == ["end"]
    done = client.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": seen[-1][1]})
    assert done.status_code == 204
    bad = client.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": "soon"})
    assert bad.status_code == 422


def test_job_events_are_the_owners_only(
    client: httpx.Client, engine: Engine, live_settings: Settings
) -> None:
    job = upload(client, english_pdf([filler(60, 4)]), "own.pdf").json()["job"]
    with tenant_client(engine, live_settings, str(client.base_url)) as stranger:
        assert stranger.get(f"/v1/jobs/{job['id']}/events").status_code == 404
        wrong = stranger.get(job["events_url"].replace(job["id"], str(uuid.uuid4())))
        assert wrong.status_code == 403
    with bare_client(str(client.base_url)) as anonymous:
        assert anonymous.get(f"/v1/jobs/{job['id']}/events").status_code == 401
    asked = ask(client, "When is the lantern lit?")
    with colleague_client(engine, live_settings, client) as colleague:
        # Ingestion is the tenant's to follow; a question is its asker's alone.
        assert [name for name, _, _ in _events(colleague, f"/v1/jobs/{job['id']}/events")][
            -1
        ] == "end"
        assert colleague.get(f"/v1/jobs/{asked['job_id']}/events").status_code == 404


# ---- one listener per API process ---------------------------------------------------------------


def _connections(services: Services) -> int:
    client = redis.Redis.from_url(services.redis_url)
    try:
        return int(client.info("clients")["connected_clients"])
    finally:
        client.close()


def test_open_streams_share_one_redis_reader(
    client: httpx.Client, servers: tuple[LiveServer, ApiProcess], services: Services,
    standin: StandIn,
) -> None:  # fmt: skip
    standin.piece_delay = 0.1  # about four seconds of answer
    started = ask(client, "When is the lantern lit?")
    readers = 60
    before = _connections(services)
    texts: list[str] = []
    opened = threading.Barrier(readers + 1, timeout=30)

    def read() -> None:
        with bare_client(servers[0].url) as browser:
            answer = read_stream(browser, started["stream_url"], on_event=lambda _: None)
            texts.append(answer.text)

    def read_after_barrier() -> None:
        opened.wait()
        read()

    threads = [threading.Thread(target=read_after_barrier) for _ in range(readers)]
    for thread in threads:
        thread.start()
    opened.wait()
    time.sleep(1.0)  # every reader is relaying now
    during = _connections(services)
    for thread in threads:
        thread.join(timeout=60)
    assert texts == [SLOW_REPLY] * readers  # no piece lost or doubled, for anyone
    # Sixty readers cost the API no connection of their own: its short calls (opening a
    # stream, keep-alive checks) share a pool of REDIS_POOL_SIZE, where one each would be 60.
    assert during - before <= REDIS_POOL_SIZE < readers, (before, during)


def test_readers_joining_mid_answer_get_every_token_once(
    client: httpx.Client, servers: tuple[LiveServer, ApiProcess], standin: StandIn
) -> None:
    """Readers join all through an answer, on either API process: each reads the part already
    written from the stream and the rest live, and a third of them hang up after a few
    deltas and resume with Last-Event-ID, so their seams fall mid-answer too."""
    standin.piece_delay = 0.05  # about two seconds of answer
    started = ask(client, "When is the lantern lit?")
    shown: list[tuple[str, list[str]]] = []

    def join(n: int) -> None:
        time.sleep(0.12 * n)
        with bare_client(servers[n % 2].url) as browser:
            if n % 3:
                answer = read_stream(browser, started["stream_url"])
                shown.append((answer.text, [e.id for e in answer.events]))
                return
            head = read_stream(browser, started["stream_url"], stop_after_deltas=3)
            rest = read_stream(browser, started["stream_url"], last_event_id=head.events[-1].id)
            shown.append((head.text + rest.text, [e.id for e in head.events + rest.events]))

    threads = [threading.Thread(target=join, args=(n,)) for n in range(18)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [text for text, _ in shown] == [SLOW_REPLY] * len(threads)
    for _, ids in shown:  # in order, none twice
        assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
        assert len(set(ids)) == len(ids)


def test_a_slow_reader_holds_back_no_other_reader(
    client: httpx.Client, servers: tuple[LiveServer, ApiProcess], standin: StandIn
) -> None:
    """One reader opens the answer and reads nothing until eight others have read all of it;
    then it reads the whole answer too."""
    standin.piece_delay = 0.02
    started = ask(client, "When is the lantern lit?")
    texts: list[str] = []
    with (
        bare_client(servers[0].url) as slow_browser,
        connect_sse(slow_browser, "GET", started["stream_url"], timeout=60) as slow,
    ):
        assert slow.response.status_code == 200

        def read() -> None:
            with bare_client(servers[0].url) as browser:
                texts.append(read_stream(browser, started["stream_url"]).text)

        fast = [threading.Thread(target=read) for _ in range(8)]
        for thread in fast:
            thread.start()
        for thread in fast:
            thread.join(timeout=60)
        assert texts == [SLOW_REPLY] * len(fast)
        late = Answer()
        for sse in slow.iter_sse():
            if sse.data:
                late.events.append(Event(sse.event, sse.id, json.loads(sse.data)))
            if sse.event == "end":
                break
    assert late.names[0] == "start" and late.names[-1] == "end"
    assert late.text == SLOW_REPLY


def test_a_slow_reader_gets_its_deltas_coalesced_with_exact_ids(services: Services) -> None:
    job_id = uuid.uuid4()
    writer = EventWriter(redis.Redis.from_url(services.redis_url), job_id, 60)

    async def scenario() -> tuple[list[Any], str]:
        reader = redis.asyncio.Redis.from_url(services.redis_url)
        hub = StreamHub(reader, reader)
        hub.start()
        try:
            subscription = await hub.subscribe(stream_key(job_id), "0-0")
            for n in range(100):  # produced while the reader takes nothing
                writer.emit(Delta(f"{n} "))
                await asyncio.sleep(0.005)
            writer.emit(End("stop", NOTHING_SPENT))
            last = (await reader.xrevrange(stream_key(job_id), count=1))[0][0].decode()
            await asyncio.sleep(1.0)
            return await subscription.next(1.0), last
        finally:
            await hub.close("done")
            await reader.aclose()

    taken, last_id = asyncio.run(scenario())
    assert len(taken) <= hub_module.COALESCE_AFTER + 4
    text = "".join(json.loads(event.data)["text"] for event in taken if event.name == "delta")
    assert text == "".join(f"{n} " for n in range(100))
    assert taken[-1].name == "end" and taken[-1].id == last_id
    assert taken[-2].name == "delta" and taken[-2].id < last_id  # the last delta's own id


# ---- two API processes --------------------------------------------------------------------------


def test_an_answer_asked_through_one_process_resumes_through_the_other(
    client: httpx.Client, servers: tuple[LiveServer, ApiProcess], standin: StandIn
) -> None:
    standin.piece_delay = 0.05
    first, second = servers
    started = ask(client, "When is the lantern lit?")
    with bare_client(first.url) as one:
        head = read_stream(one, started["stream_url"], stop_after_deltas=5)
    with bare_client(second.url) as other:
        rest = read_stream(other, started["stream_url"], last_event_id=head.events[-1].id)
    assert "start" not in rest.names and rest.names[-1] == "end"
    assert head.text + rest.text == SLOW_REPLY


# ---- the WebSocket contract ---------------------------------------------------------------------


def _socket(
    server: LiveServer | ApiProcess, client: httpx.Client, **query: str
) -> ClientConnection:
    token = client.headers["Authorization"].removeprefix("Bearer ")
    tenant = client.headers["X-Tenant-ID"]
    params = {"token": token, "tenant": tenant, **query}
    url = (
        server.url.replace("http", "ws")
        + "/ws/chat?"
        + "&".join(f"{k}={v}" for k, v in params.items())
    )
    return connect(url, open_timeout=10)


def _frames_until_end(socket: ClientConnection, limit: int | None = None) -> list[dict[str, Any]]:
    frames = []
    while True:
        frame = json.loads(socket.recv(timeout=30))
        frames.append(frame)
        if frame["event"] in ("end", "error") and frame.get("id"):
            return frames
        if frame["event"] == "error" and frame["data"].get("code") != "bad_frame":
            return frames
        if limit is not None and sum(f["event"] == "delta" for f in frames) >= limit:
            return frames


def test_a_websocket_asks_several_questions_and_resumes_and_cancels(
    client: httpx.Client, servers: tuple[LiveServer, ApiProcess], standin: StandIn
) -> None:
    first, second = servers
    standin.piece_delay = 0.02  # many deltas
    with _socket(first, client) as socket:
        socket.send(json.dumps({"message": "When is the lantern lit?"}))
        frames = _frames_until_end(socket)
        names = [f["event"] for f in frames]
        assert names[:2] == ["start", "citations"] and names[-1] == "end"
        assert "".join(f["data"]["text"] for f in frames if f["event"] == "delta") == SLOW_REPLY
        start = frames[0]["data"]
        # The SSE payloads under the same ids: the same answer read over SSE (a socket read
        # slower than the answer came may get several deltas in one, under the last one's id).
        sse = read_stream(client, f"/v1/chat/{start['job_id']}/stream")
        assert [(e.event, e.id, e.data) for e in sse.events if e.event != "delta"] == [
            (f["event"], f["id"], f["data"]) for f in frames if f["event"] != "delta"
        ]
        assert sse.text == SLOW_REPLY
        assert {f["id"] for f in frames} <= {e.id for e in sse.events}
        # A second question on the same socket, in the same session.
        socket.send(json.dumps({"message": "And where?", "session_id": start["session_id"]}))
        second_answer = _frames_until_end(socket)
        assert second_answer[0]["data"]["session_id"] == start["session_id"]
        # Bad frames get an error frame; the socket stays usable.
        socket.send("not json")
        assert json.loads(socket.recv(timeout=10))["data"]["code"] == "bad_frame"
        socket.send(json.dumps({"message": ""}))
        assert json.loads(socket.recv(timeout=10))["data"]["code"] in ("bad_frame", "invalid_input")
        socket.send(json.dumps({"resume": {"job_id": "nope"}}))
        assert json.loads(socket.recv(timeout=10))["data"]["code"] == "invalid_input"
        # Cancel a slow answer mid-way.
        standin.piece_delay = 0.2
        socket.send(json.dumps({"message": "When is the lantern lit, slowly?"}))
        head = _frames_until_end(socket, limit=2)
        job_id = head[0]["data"]["job_id"]
        socket.send(json.dumps({"cancel": job_id}))
        rest = _frames_until_end(socket)
        ends = [f for f in rest if f["event"] == "end"]
        assert ends and ends[-1]["data"]["finish_reason"] == "cancelled"
    # Resume on a new connection, through the other process, after the fifth event.
    with _socket(second, client) as socket:
        socket.send(json.dumps({"resume": {"job_id": start["job_id"],
                                           "last_event_id": frames[4]["id"]}}))  # fmt: skip
        replay = _frames_until_end(socket)
        assert [f["id"] for f in replay] == [f["id"] for f in frames[5:]]
        # After the answer's last event there is nothing to follow: said at once.
        socket.send(json.dumps({"resume": {"job_id": start["job_id"],
                                           "last_event_id": frames[-1]["id"]}}))  # fmt: skip
        assert json.loads(socket.recv(timeout=10))["data"]["code"] == "finished"


def test_a_websocket_that_cannot_sign_in_is_closed_with_a_code(
    client: httpx.Client, servers: tuple[LiveServer, ApiProcess]
) -> None:
    url = servers[0].url.replace("http", "ws") + "/ws/chat"
    for query, code in [("", 4401), ("?token=forged", 4401)]:
        with connect(url + query, open_timeout=10) as socket:
            with pytest.raises(ConnectionClosed) as closed:
                socket.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == code
    with _socket(servers[0], client, tenant="someone-else") as socket:
        with pytest.raises(ConnectionClosed) as closed:
            socket.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


def test_the_websocket_example_asks_two_questions_in_one_session(
    client: httpx.Client, servers: tuple[LiveServer, ApiProcess]
) -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "ws_client.py"
    token = client.headers["Authorization"].removeprefix("Bearer ")
    run = subprocess.run(
        [sys.executable, str(example), "When is the lantern lit?", "And where?",
         "--api", servers[0].url, "--tenant", client.headers["X-Tenant-ID"]],
        env=os.environ | {"DOCUCHAT_TOKEN": token},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.count(SLOW_REPLY) == 2
    assert run.stdout.count("(stop; ") == 2


def test_a_websocket_question_spends_the_same_rate_limit_as_post_chat(
    engine: Engine, live_settings: Settings, servers: tuple[LiveServer, ApiProcess]
) -> None:
    tight = live_settings.model_copy(update={"rate_limit_per_minute": 2})
    with (
        LiveServer(tight) as server,
        tenant_client(engine, tight, server.url) as client,
        _socket(server, client) as socket,
    ):
        for _ in range(2):
            socket.send(json.dumps({"message": "When is the lantern lit?"}))
            assert _frames_until_end(socket)[-1]["event"] == "end"
        socket.send(json.dumps({"message": "And once more?"}))
        refused = json.loads(socket.recv(timeout=10))
        assert refused["data"]["code"] == "rate_limited"
        assert refused["data"]["retry_after"] >= 1 and "retry in" in refused["data"]["message"]
        # The budget is the one POST /v1/chat spends: spent here, refused there too.
        assert client.post("/v1/chat", json={"message": "Over HTTP?"}).status_code == 429
        # A cancel spends that budget too, as POST /v1/jobs/{id}/cancel does...
        socket.send(json.dumps({"cancel": str(uuid.uuid4())}))
        assert json.loads(socket.recv(timeout=10))["data"]["code"] == "rate_limited"
        # ...and a resume spends a read: the socket stays usable.
        socket.send(json.dumps({"resume": {"job_id": str(uuid.uuid4())}}))
        assert json.loads(socket.recv(timeout=10))["data"]["code"] == "not_found"
