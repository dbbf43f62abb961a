"""SIGTERM to the API (the Procfile's uvicorn) while answers stream: every open stream ends with
a `reconnect` event at once, the process exits cleanly, and nothing is lost: the jobs are still
there, and a client that reconnects to the next API with Last-Event-ID reads the answer on."""

from __future__ import annotations

import signal
import threading
import time

import httpx
from sqlalchemy import text

from standins.chat_client import Answer, ask, read_stream
from tests.ingest_helpers import tenant_client
from tests.stack import (
    OwnDatabase,
    Services,
    WorkerProcess,
    api_process,
)
from tools.embedded import free_port


def test_sigterm_ends_open_streams_with_reconnect_and_loses_nothing(
    services: Services, own_database: OwnDatabase, redis_database: str
) -> None:
    settings = own_database.settings(
        services, REDIS_URL=redis_database
    )  # no worker yet: the answers wait, their streams stay open
    engine = own_database.engine
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with api_process(settings, port) as api, tenant_client(engine, settings, base) as client:
        started = [ask(client, f"Where is the lantern? ({n})") for n in range(3)]
        answers: list[Answer] = [Answer() for _ in started]

        opened = [threading.Event() for _ in started]

        def follow(n: int) -> None:
            answers[n] = read_stream(
                client, started[n]["stream_url"], on_event=lambda _: opened[n].set()
            )

        readers = [threading.Thread(target=follow, args=(n,)) for n in range(len(started))]
        for reader in readers:
            reader.start()
        for stream in opened:  # every stream has sent `start` and waits for the answer
            assert stream.wait(timeout=20)
        signalled = time.monotonic()
        api.send_signal(signal.SIGTERM)
        for reader in readers:
            reader.join(timeout=20)
        exit_code = api.wait(timeout=20)
        stopped_after = time.monotonic() - signalled
        credentials = {name: client.headers[name] for name in ("Authorization", "X-Tenant-ID")}

    # uvicorn shuts down gracefully, then re-raises the signal it caught with the default
    # handler back in place, as a process stopped by SIGTERM should end.
    assert exit_code == -signal.SIGTERM
    assert stopped_after < 5  # not the 15 s of a keep-alive wait, nor the answers' time
    for answer in answers:
        assert answer.names == ["start", "reconnect"]
        assert "Last-Event-ID" in answer.last("reconnect")["reason"]
    ids = [s["job_id"] for s in started]
    with engine.connect() as conn:
        statuses = conn.execute(
            text("SELECT status FROM jobs WHERE id = ANY(CAST(:ids AS uuid[]))"), {"ids": ids}
        ).scalars()
        assert set(statuses) == {"queued"}  # handed on, not dropped

    # The next API and a worker: the client reconnects where it was and reads the answer.
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with (
        api_process(settings, port),
        httpx.Client(base_url=base, headers=credentials, timeout=30) as client,
        WorkerProcess(settings),
    ):
        resumed = read_stream(
            client, started[0]["stream_url"], last_event_id=answers[0].events[0].id
        )
    assert resumed.names[-1] == "end" and "start" not in resumed.names
