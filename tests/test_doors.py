"""Every door bounded, through real uvicorn, Redis, Postgres and workers: no tenant can break
another's streams, no socket outlives its caller's right, nothing a caller holds open is
unbounded (streams, sockets, frames, upload bodies)."""

from __future__ import annotations

import asyncio
import json
import select
import socket as sockets
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import Engine
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from api.signin.tokens import issue_access_token
from core.settings import Settings
from standins.chat_client import Answer, ask, read_stream
from standins.documents import english_pdf, filler
from standins.model_server import StandIn
from tests.ingest_helpers import colleague_client, ingest, tenant_client, upload
from tests.stack import LiveServer, OwnDatabase, Services, WorkerProcess
from transport.events import Delta, publish, stream_key
from transport.hub import HubClosed, StreamHub

REPLY = " ".join(f"word{i}" for i in range(40)) + " [1]."
HUGE_ID = "0-18446744073709551616"  # 2**64: past what Redis keeps in an id's sequence
FOREIGN_DIGITS_ID = "٠-٠"  # Arabic-Indic digits: Python's \d takes them, Redis does not

pytestmark = pytest.mark.standin(reply=REPLY)


@pytest.fixture(scope="module")
def engine(fleet: OwnDatabase) -> Engine:
    return fleet.engine


@pytest.fixture(scope="module")
def door_settings(services: Services, standin: StandIn, fleet: OwnDatabase) -> Settings:
    return fleet.settings(
        services,
        OPENAI_BASE_URL=standin.base_url,
        RATE_LIMIT_PER_MINUTE="100000",
        SSE_KEEPALIVE_SECONDS="1",
        MAX_STREAMS_PER_USER="3",
        MAX_STREAMS_PER_TENANT="5",
        MAX_UPLOADS_PER_USER="2",
        BODY_IDLE_SECONDS="2",
        BODY_RATE_WINDOW_SECONDS="3",
        MAX_UPLOAD_MB="1",
        WS_MAX_FRAME_BYTES="65536",
    )


@pytest.fixture(scope="module")
def server(door_settings: Settings, engine: Engine) -> Iterator[LiveServer]:
    with WorkerProcess(door_settings, threads=4), LiveServer(door_settings) as live:
        yield live


@contextmanager
def _tenant(engine: Engine, settings: Settings, server: LiveServer) -> Iterator[httpx.Client]:
    """A new tenant's admin, with a document to ask about."""
    with tenant_client(engine, settings, server.url, role="admin") as client:
        ingest(client, english_pdf(["The copper lantern hangs in the harbour. " + filler(3, 4)]))
        yield client


@pytest.fixture(scope="module")
def tenant_a(engine: Engine, door_settings: Settings, server: LiveServer) -> Iterator[httpx.Client]:
    with _tenant(engine, door_settings, server) as client:
        yield client


@pytest.fixture(scope="module")
def tenant_b(engine: Engine, door_settings: Settings, server: LiveServer) -> Iterator[httpx.Client]:
    with _tenant(engine, door_settings, server) as client:
        yield client


def _socket(server: LiveServer, client: httpx.Client, token: str | None = None) -> ClientConnection:
    token = token or client.headers["Authorization"].removeprefix("Bearer ")
    url = f"{server.url.replace('http', 'ws')}/ws/chat?token={token}"
    return connect(f"{url}&tenant={client.headers['X-Tenant-ID']}", open_timeout=10)


def _frame(socket: ClientConnection, timeout: float = 15) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(socket.recv(timeout=timeout))
    return frame


def _until_end(socket: ClientConnection) -> list[dict[str, Any]]:
    frames = [_frame(socket)]
    while not (frames[-1]["event"] in ("end", "error") and frames[-1]["id"]):
        frames.append(_frame(socket))
    return frames


def _closed_with(socket: ClientConnection, timeout: float = 10) -> int:
    """The code the server closed the socket with (frames before it are dropped)."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            socket.recv(timeout=timeout)
    assert closed.value.rcvd is not None, "closed without a close frame"
    return closed.value.rcvd.code


class Reader(threading.Thread):
    """Reads an answer's stream to its end in the background, as a browser would."""

    def __init__(self, client: httpx.Client, url: str) -> None:
        super().__init__(daemon=True)
        self.client, self.url = client, url
        self.answer: Answer | None = None

    def run(self) -> None:
        self.answer = read_stream(self.client, self.url)


# ---- 1. one reader's bad Last-Event-ID ends nobody else's stream --------------------------------


def test_a_huge_last_event_id_is_refused_and_other_tenants_streams_deliver_every_token(
    tenant_a: httpx.Client, tenant_b: httpx.Client, server: LiveServer, standin: StandIn
) -> None:
    finished = ask(tenant_b, "Where does the lantern hang?")
    read_stream(tenant_b, finished["stream_url"])
    standin.piece_delay = 0.05  # two seconds of answer for tenant A
    reader = Reader(tenant_a, ask(tenant_a, "Where does the lantern hang?")["stream_url"])
    reader.start()
    time.sleep(0.3)
    # Tenant B, over HTTP, then over a socket, again and again while A's answer streams.
    refused = tenant_b.get(finished["stream_url"], headers={"Last-Event-ID": HUGE_ID})
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == "Last-Event-ID"
    with _socket(server, tenant_b) as socket:
        for n in range(10):
            bad = HUGE_ID if n % 2 else FOREIGN_DIGITS_ID
            socket.send(json.dumps({"resume": {"job_id": finished["job_id"],
                                               "last_event_id": bad}}))  # fmt: skip
            assert _frame(socket)["data"]["code"] == "invalid_input"
            time.sleep(0.1)
    reader.join(timeout=30)
    assert reader.answer is not None
    assert reader.answer.names[-1] == "end" and reader.answer.text == REPLY


def test_a_stream_whose_read_redis_refuses_ends_alone(redis_database: str) -> None:
    """The hub's one connection carries every stream: when Redis refuses to read one stream
    (here a key that is not a stream), that stream's readers are told, the others read on."""
    url = redis_database
    job, other = uuid.uuid4(), uuid.uuid4()
    plain = redis.Redis.from_url(url)
    plain.set(stream_key(other), b"not a stream")

    async def scenario() -> tuple[list[str], BaseException | None]:
        from redis.asyncio import Redis

        reader, writer = Redis.from_url(url), Redis.from_url(url)
        hub = StreamHub(reader, writer)
        hub.start()
        try:
            good = await hub.subscribe(stream_key(job), "0-0")
            bad = await hub.subscribe(stream_key(other), "0-0")
            got: list[str] = []
            failure: BaseException | None = None
            for n in range(5):
                await publish(writer, job, 60, Delta(f"{n} "))
                got += [stored.id for stored in await good.next(2)]
                if failure is None:
                    try:
                        await bad.next(0.01)
                    except HubClosed as closed:
                        failure = closed
            return got, failure
        finally:
            await hub.close("done")
            await reader.aclose()
            await writer.aclose()

    try:
        got, failure = asyncio.run(scenario())
    finally:
        plain.delete(stream_key(job), stream_key(other))
        plain.close()
    assert len(got) == 5  # every entry reached the good stream's reader
    assert isinstance(failure, HubClosed) and "WRONGTYPE" in str(failure)


# ---- 2. a socket is authorised on every use, and closed when its right ends ---------------------


def test_an_open_socket_is_closed_when_its_member_is_removed(
    tenant_a: httpx.Client, engine: Engine, door_settings: Settings, server: LiveServer
) -> None:
    with colleague_client(engine, door_settings, tenant_a) as member:
        me = member.get("/v1/me").json()
        with _socket(server, member) as socket:
            socket.send(json.dumps({"message": "Where does the lantern hang?"}))
            assert _until_end(socket)[-1]["event"] == "end"
            assert tenant_a.delete(f"/v1/members/{me['user_id']}").status_code == 204
            started = time.monotonic()
            socket.send(json.dumps({"message": "And where is the ledger kept?"}))
            frames: list[dict[str, Any]] = []
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    frames.append(_frame(socket))
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
            assert "no longer a member" in closed.value.rcvd.reason
            assert not [f for f in frames if f["event"] in ("start", "delta")]  # no answer
            assert time.monotonic() - started < 5


def test_a_socket_is_closed_when_its_token_expires_even_without_a_frame(
    tenant_a: httpx.Client, engine: Engine, door_settings: Settings, server: LiveServer
) -> None:
    with colleague_client(engine, door_settings, tenant_a) as member:
        me = member.get("/v1/me").json()
        short = door_settings.model_copy(update={"access_token_ttl_seconds": 2})
        token = issue_access_token(
            short, uuid.UUID(me["user_id"]), uuid.UUID(me["tenant"]["id"])
        ).token
        with _socket(server, member, token) as socket:
            socket.send(json.dumps({"resume": {"job_id": str(uuid.uuid4())}}))
            assert _frame(socket)["data"]["code"] == "not_found"  # usable while valid
            started = time.monotonic()
            assert _closed_with(socket) == 4401
            assert time.monotonic() - started < 4  # at its expiry, not a keep-alive later


# ---- 3. open streams: one budget per user, per tenant and per process ---------------------------


def test_open_streams_are_capped_per_user_and_per_tenant_and_another_tenant_still_streams(
    tenant_a: httpx.Client,
    tenant_b: httpx.Client,
    engine: Engine,
    door_settings: Settings,
    server: LiveServer,
    standin: StandIn,
) -> None:
    standin.piece_delay = 0.5  # twenty seconds of answer: its streams stay open
    job = ask(tenant_a, "Where does the lantern hang?")["job_id"]
    events = f"/v1/jobs/{job}/events"
    with (
        colleague_client(engine, door_settings, tenant_a) as colleague,
        tenant_a.stream("GET", events) as first,
        tenant_a.stream("GET", events) as second,
        tenant_a.stream("GET", f"/v1/chat/{job}/stream") as third,
    ):
        assert first.status_code == second.status_code == third.status_code == 200
        # The user's fourth, whatever the door: 429 naming the limit.
        for refused in (tenant_a.get(events), tenant_a.get(f"/v1/chat/{job}/stream")):
            assert refused.status_code == 429, refused.text
            assert "MAX_STREAMS_PER_USER" in refused.json()["detail"]
            assert int(refused.headers["Retry-After"]) >= 1
        with _socket(server, tenant_a) as socket:
            assert _closed_with(socket) == 4429
        # A colleague has two left of the tenant's five.
        own = ask(colleague, "Where is the ledger?")["job_id"]
        with (
            colleague.stream("GET", f"/v1/jobs/{own}/events") as fourth,
            colleague.stream("GET", f"/v1/jobs/{own}/events") as fifth,
        ):
            assert fourth.status_code == fifth.status_code == 200
            refused = colleague.get(f"/v1/jobs/{own}/events")
            assert refused.status_code == 429 and "MAX_STREAMS_PER_TENANT" in refused.text
            # Another tenant is not held up by tenant A's streams.
            standin.piece_delay = 0.0
            answer = read_stream(tenant_b, ask(tenant_b, "Where does it hang?")["stream_url"])
            assert answer.text == REPLY
    # Closed streams give their places back (once the server has seen their clients leave).
    deadline = time.monotonic() + 5
    while (status := tenant_a.get(f"/v1/jobs/{job}").status_code) == 200:
        with tenant_a.stream("GET", events) as again:
            if again.status_code == 200 or time.monotonic() > deadline:
                assert again.status_code == 200, again.read()
                break
        time.sleep(0.2)
    assert status == 200


# ---- 4 and 8. upload bodies: paced, capped, closed, cleaned up ----------------------------------


def _upload_head(client: httpx.Client, length: int, chunked: bool = False) -> bytes:
    headers = {
        "Host": "docuchat",
        "Authorization": client.headers["Authorization"],
        "X-Tenant-ID": client.headers["X-Tenant-ID"],
        "Content-Type": "multipart/form-data; boundary=b0undary",
    }
    headers |= {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(length)}
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return f"POST /v1/files HTTP/1.1\r\n{lines}\r\n".encode()


PART_HEAD = (
    b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="slow.pdf"\r\n'
    b"Content-Type: application/pdf\r\n\r\n%PDF-1.4\n"
)


def _connect(server: LiveServer) -> sockets.socket:
    return sockets.create_connection(("127.0.0.1", server.port), timeout=15)


def _answer_and_close(sock: sockets.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _temporary_uploads() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("docuchat-upload-*"))


def test_an_upload_body_that_stops_coming_gets_408_and_leaves_nothing(
    tenant_a: httpx.Client, server: LiveServer
) -> None:
    before = _temporary_uploads()
    with _connect(server) as silent, _connect(server) as trickle:
        silent.sendall(_upload_head(tenant_a, 100_000) + PART_HEAD)  # then nothing
        trickle.sendall(_upload_head(tenant_a, 100_000) + PART_HEAD)
        started = time.monotonic()
        # A byte a second: never idle for 2 s, far below 1 KiB/s; until the server answers.
        while not select.select([trickle], [], [], 1)[0] and time.monotonic() - started < 9:
            trickle.sendall(b"x")
        for sock, why in ((silent, b"no byte of the request's body arrived for 2 s"),
                          (trickle, b"slower than the 1024 allowed")):  # fmt: skip
            answer = _answer_and_close(sock)  # returns once the server hung up
            assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
            assert why in answer and b"connection: close" in answer.lower()
        assert time.monotonic() - started < 10
    assert _temporary_uploads() - before == set()


def test_a_json_body_that_stops_coming_gets_408(tenant_a: httpx.Client, server: LiveServer) -> None:
    head = (
        _upload_head(tenant_a, 500)
        .replace(b"POST /v1/files", b"POST /v1/chat")
        .replace(b"multipart/form-data; boundary=b0undary", b"application/json")
    )
    with _connect(server) as sock:
        sock.sendall(head + b'{"message": "Where')  # then nothing
        started = time.monotonic()
        answer = _answer_and_close(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"BODY_IDLE_SECONDS" in answer and time.monotonic() - started < 5


def test_concurrent_uploads_are_capped_per_user(
    tenant_a: httpx.Client, engine: Engine, door_settings: Settings, server: LiveServer
) -> None:
    # Made first: the two uploads below are held open for less than BODY_IDLE_SECONDS.
    third = english_pdf(["A third upload at once."])
    colleagues = english_pdf(["A colleague's upload."])
    with _connect(server) as one, _connect(server) as two:
        for sock in (one, two):
            sock.sendall(_upload_head(tenant_a, 100_000) + PART_HEAD)
        time.sleep(0.5)
        refused = upload(tenant_a, third)
        assert refused.status_code == 429, refused.text
        assert "MAX_UPLOADS_PER_USER" in refused.json()["detail"]
        with colleague_client(engine, door_settings, tenant_a) as colleague:  # not theirs
            assert upload(colleague, colleagues).status_code == 202
    time.sleep(0.5)  # the two left: their places come back
    assert upload(tenant_a, english_pdf(["Now it fits."])).status_code == 202


def test_an_over_limit_chunked_upload_gets_413_and_is_not_read_on(
    tenant_a: httpx.Client, server: LiveServer
) -> None:
    chunk = b"%x\r\n%s\r\n" % (1 << 16, b"x" * (1 << 16))
    with _connect(server) as sock:
        sock.sendall(_upload_head(tenant_a, 0, chunked=True) + b"%x\r\n%s\r\n" % (
            len(PART_HEAD), PART_HEAD))  # fmt: skip
        sent = 0
        with pytest.raises(OSError):  # the server hangs up: a reset or a broken pipe
            while sent < 64 << 20:  # 64 MB, far past the 1 MB limit and its envelope
                sock.sendall(chunk)
                sent += len(chunk)
            answer = _answer_and_close(sock)
            pytest.fail(f"read on to the end: {answer[:200]!r}")
        assert sent < 16 << 20, f"{sent:,} bytes were taken before the server hung up"


def test_a_body_refused_before_it_arrived_is_not_read_on(
    tenant_a: httpx.Client, server: LiveServer
) -> None:
    """A 415 (or 401, 429...) answered while the body is still coming: the connection is
    closed, so no client can hold it open by trickling the rest."""
    head = _upload_head(tenant_a, 100_000).replace(
        b"multipart/form-data; boundary=b0undary", b"text/plain"
    )
    with _connect(server) as sock:
        sock.sendall(head + b"x")
        started = time.monotonic()
        answer = _answer_and_close(sock)
    assert answer.startswith(b"HTTP/1.1 415 "), answer[:200]
    assert time.monotonic() - started < 3


def test_an_over_limit_upload_is_answered_413_before_the_connection_closes(
    tenant_a: httpx.Client, server: LiveServer
) -> None:
    with _connect(server) as sock:
        sock.sendall(_upload_head(tenant_a, 3 << 20) + PART_HEAD)  # answered before the body
        answer = _answer_and_close(sock)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"connection: close" in answer.lower()


# ---- 5 and 7. sockets spend budgets like HTTP; frames are bounded ------------------------------


def test_socket_connects_and_frames_spend_the_read_budget(
    door_settings: Settings, engine: Engine
) -> None:
    tight = door_settings.model_copy(
        update={"read_rate_limit_per_minute": 4, "max_streams_per_user": 50}
    )
    with LiveServer(tight) as server, tenant_client(engine, tight, server.url) as client:
        with _socket(server, client) as socket:  # one read
            resume = json.dumps({"resume": {"job_id": str(uuid.uuid4())}})
            codes = []
            for _ in range(5):
                socket.send(resume)
                codes.append(_frame(socket)["data"]["code"])
            assert codes[:3] == ["not_found"] * 3  # three reads left...
            assert codes[3:] == ["rate_limited"] * 2  # ...then refused, without a lookup
            # Every frame spends a read before it is decoded, whatever it holds.
            for frame in (json.dumps({"message": "Still open?"}), "[" * 1000 + "]" * 1000):
                socket.send(frame)
                refused = _frame(socket)["data"]
                assert refused["code"] == "rate_limited" and refused["retry_after"] >= 1
        with _socket(server, client) as refused:  # a connect spends a read too
            assert _closed_with(refused) == 4429


def test_a_frame_larger_than_the_limit_closes_the_socket_with_1009(
    tenant_a: httpx.Client, server: LiveServer
) -> None:
    with _socket(server, tenant_a) as socket:
        socket.send(json.dumps({"message": "x" * 70_000}))
        assert _closed_with(socket) == 1009


def test_a_deeply_nested_frame_gets_an_error_frame_and_the_socket_stays_open(
    tenant_a: httpx.Client, server: LiveServer
) -> None:
    with _socket(server, tenant_a) as socket:
        socket.send("[" * 1000 + "]" * 1000)
        refused = _frame(socket)
        assert refused["event"] == "error" and refused["data"]["code"] == "bad_frame"
        assert "nested too deeply" in refused["data"]["message"]
        socket.send(json.dumps({"resume": {"job_id": str(uuid.uuid4())}}))
        assert _frame(socket)["data"]["code"] == "not_found"


# ---- 6. cancelling an ingestion follows the delete rule ----------------------------------------


def test_a_member_cannot_cancel_a_colleagues_ingestion_over_http_or_socket(
    tenant_a: httpx.Client, engine: Engine, door_settings: Settings, server: LiveServer
) -> None:
    uploaded = upload(tenant_a, english_pdf(["The admin's own guide. " + filler(5, 6)]))
    job = uploaded.json()["job"]["id"]
    with colleague_client(engine, door_settings, tenant_a) as member:
        refused = member.post(f"/v1/jobs/{job}/cancel")
        assert refused.status_code == 403, refused.text
        assert "uploaded a document, or an admin" in refused.json()["detail"]
        with _socket(server, member) as socket:
            socket.send(json.dumps({"cancel": job}))
            assert _frame(socket)["data"]["code"] == "forbidden"
        # Their own upload they may cancel, as they may delete it.
        mine = upload(member, english_pdf(["The member's guide. " + filler(7, 6)])).json()
        assert member.post(f"/v1/jobs/{mine['job']['id']}/cancel").status_code in (200, 409)
    status = tenant_a.get(f"/v1/jobs/{job}").json()["status"]
    assert status != "cancelled"  # the refused cancels changed nothing
