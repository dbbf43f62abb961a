"""Load: many chat streams and uploads at once, for a bounded time, on the embedded default.

Run with `make bench` (or `python -m bench.load`). Starts a private embedded Postgres and Redis
under .bench/, the API (the Procfile's uvicorn command) and the workers, with the OpenAI
stand-in of the tests as the chat provider. The stand-in streams each answer as ANSWER_TOKENS
pieces at TOKEN_INTERVAL, and every piece is the time it was sent. Then, over loopback:

- STREAMS clients each ask a question, read its answer over SSE to the end, compare the text
  they showed with the message the API saved, and ask again, until DURATION seconds are up;
- UPLOADERS clients each upload a PDF of their own, wait for its ingestion, and upload again.

It reports errors (any non-2xx answer, any `error` event, any answer whose shown text is not
the saved one), tokens lost or doubled, the latency each token gained between the provider and
the client (median and p99), time to first token, and the work done. BENCH_LOAD_SECONDS,
BENCH_LOAD_STREAMS and BENCH_LOAD_UPLOADERS change the sizes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import httpx
import psutil

from bench.chat import _percentile
from bench.stack import (
    WORK,
    answered_by,
    bench_members,
    environment,
    fresh_stack,
    running,
    wait_healthy,
)
from standins.documents import english_pdf, filler
from standins.model_server import StandIn
from tools.devstack import WORKER_NICENESS, api_command, worker_command
from tools.embedded import free_port

DURATION = float(os.environ.get("BENCH_LOAD_SECONDS", "60"))
STREAMS = int(os.environ.get("BENCH_LOAD_STREAMS", "200"))
UPLOADERS = int(os.environ.get("BENCH_LOAD_UPLOADERS", "20"))
USERS = 20
ANSWER_TOKENS = 40
TOKEN_INTERVAL = 0.02  # 50 tokens a second, a fast hosted model
WORKER_PROCESSES, WORKER_THREADS = 2, 12
# The workers' priority, as `docuchat dev` sets it (core/devstack.py); BENCH_LOAD_NICE=0 shows
# what happens without.
NICE = int(os.environ.get("BENCH_LOAD_NICE", str(WORKER_NICENESS)))


@dataclass
class Tally:
    answers: int = 0
    uploads: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    tokens_shown: int = 0
    tokens_lost: int = 0
    tokens_doubled: int = 0
    token_latency: list[float] = field(default_factory=list)
    # The two halves of it: provider to Redis (the worker), Redis to client (the API's relay).
    worker_latency: list[float] = field(default_factory=list)
    relay_latency: list[float] = field(default_factory=list)
    first_token: list[float] = field(default_factory=list)
    ingest_seconds: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # cores used, by component


async def _chat_client(client: httpx.AsyncClient, n: int, deadline: float, tally: Tally) -> None:
    asked = 0
    while time.monotonic() < deadline:
        asked += 1
        try:
            await _ask(client, f"lantern {n}.{asked}?", tally)
        except httpx.TransportError as exc:
            tally.errors[f"chat: {type(exc).__name__}"] += 1


async def _ask(client: httpx.AsyncClient, question: str, tally: Tally) -> None:
    sent = time.perf_counter()
    response = await client.post("/v1/chat", json={"message": question})
    if response.status_code != 202:
        tally.errors[f"chat {response.status_code}"] += 1
        await asyncio.sleep(0.5)
        return
    started = response.json()
    shown: list[tuple[str, float, float]] = []  # (stamp, written to Redis, received at)
    ended = False
    async for event, event_id, data in _events(client, started["stream_url"]):
        if event == "delta":
            now = time.time()
            if not shown:
                tally.first_token.append(time.perf_counter() - sent)
            written = int(event_id.split("-")[0]) / 1000  # a stream id is its XADD time
            shown += [(s, written, now) for s in json.loads(data)["text"].split()]
        elif event == "restart":
            shown = []
        elif event == "error":
            tally.errors[f"error event {json.loads(data).get('code')}"] += 1
            break
        elif event == "end":
            ended = True
            break
        elif event == "http-error":
            tally.errors[f"stream {data}"] += 1
            break
    if ended:
        await _compare(client, started, shown, tally)


async def _events(client: httpx.AsyncClient, path: str) -> AsyncIterator[tuple[str, str, str]]:
    """(event, id, data) of an SSE stream, read off a plain socket: a light client, so that
    the latency measured is the server's, not a busy client library's."""
    reader, writer = await asyncio.open_connection(client.base_url.host, client.base_url.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: load\r\nAccept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    try:
        status = (await reader.readline()).split()[1].decode()
        if status != "200":
            yield "http-error", "", status
            return
        event = event_id = ""
        while line := await reader.readline():
            text = line.decode().rstrip("\r\n")
            if text.startswith("event: "):
                event = text[7:]
            elif text.startswith("id: "):
                event_id = text[4:]
            elif text.startswith("data: "):
                yield event, event_id, text[6:]
    finally:
        writer.close()


async def _compare(
    client: httpx.AsyncClient,
    started: dict[str, Any],
    shown: list[tuple[str, float, float]],
    tally: Tally,
) -> None:
    """The saved answer against what the client showed: every token once, none added."""
    response = await client.get(f"/v1/sessions/{started['session_id']}/messages")
    saved = next(
        m["content"] for m in response.json()["messages"] if m["role"] == "assistant"
    ).split()
    stamps = [stamp for stamp, _, _ in shown]
    tally.answers += 1
    tally.tokens_shown += len(stamps)
    tally.tokens_lost += len(set(saved) - set(stamps))
    tally.tokens_doubled += len(stamps) - len(set(stamps))
    if stamps != saved:
        tally.errors["shown text differs from the saved message"] += 1
    for stamp, written, received in shown:
        tally.token_latency.append(received - float(stamp))
        tally.worker_latency.append(written - float(stamp))
        tally.relay_latency.append(received - written)


async def _uploader(
    client: httpx.AsyncClient, pdfs: list[bytes], deadline: float, tally: Tally
) -> None:
    while time.monotonic() < deadline and pdfs:
        try:
            await _upload(client, pdfs.pop(), tally)
        except httpx.TransportError as exc:
            tally.errors[f"upload: {type(exc).__name__}"] += 1


async def _upload(client: httpx.AsyncClient, pdf: bytes, tally: Tally) -> None:
    began = time.perf_counter()
    files = {"file": (f"{uuid.uuid4().hex}.pdf", pdf, "application/pdf")}
    response = await client.post("/v1/files", files=files)
    if response.status_code != 202:
        tally.errors[f"upload {response.status_code}"] += 1
        return
    job_id = response.json()["job"]["id"]
    while True:
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        await asyncio.sleep(0.2)
    if job["status"] != "succeeded":
        tally.errors[f"ingestion {job['status']}: {job['error']}"] += 1
        return
    tally.uploads += 1
    tally.ingest_seconds.append(time.perf_counter() - began)


async def _load(base_url: str, headers: list[dict[str, str]], pdfs: list[bytes]) -> Tally:
    tally = Tally()
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    clients = [
        httpx.AsyncClient(base_url=base_url, headers=h, timeout=120, limits=limits) for h in headers
    ]
    deadline = time.monotonic() + DURATION
    try:
        await asyncio.gather(
            *(_chat_client(clients[n % USERS], n, deadline, tally) for n in range(STREAMS)),
            *(_uploader(clients[n % USERS], pdfs, deadline, tally) for n in range(UPLOADERS)),
        )
    finally:
        for client in clients:
            await client.aclose()
    return tally


def _report(tally: Tally, wall: float) -> list[str]:
    ms = [latency * 1000 for latency in tally.token_latency] or [0.0]
    first = [seconds * 1000 for seconds in tally.first_token] or [0.0]
    errors = sum(tally.errors.values())
    return [
        f"load: {STREAMS} chat streams and {UPLOADERS} uploaders for {wall:.0f} s "
        f"({ANSWER_TOKENS} tokens per answer at {1 / TOKEN_INTERVAL:.0f}/s; API 1 process, "
        f"workers {WORKER_PROCESSES}x{WORKER_THREADS} threads, nice {NICE})",
        f"  answers {tally.answers} ({tally.answers / wall:.1f}/s), uploads ingested "
        f"{tally.uploads} (median {statistics.median(tally.ingest_seconds or [0]):.1f} s each)",
        f"  errors {errors}" + (f": {dict(tally.errors)}" if errors else ""),
        f"  tokens shown {tally.tokens_shown}, lost {tally.tokens_lost}, "
        f"doubled {tally.tokens_doubled}",
        f"  added latency per token (provider to client): median {statistics.median(ms):.1f} ms, "
        f"p99 {_percentile(ms, 0.99):.1f} ms",
        "    of which provider to Redis (worker) "
        + _spread(tally.worker_latency)
        + ", Redis to client (API relay) "
        + _spread(tally.relay_latency),
        f"  time to first token (request to first delta): median "
        f"{statistics.median(first):.0f} ms, p99 {_percentile(first, 0.99):.0f} ms",
        "  CPU, in cores of this machine's "
        + str(os.cpu_count())
        + ": "
        + ", ".join(f"{name} {cores:.2f}" for name, cores in tally.cpu.items()),
    ]


def _cpu(groups: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds used so far by each group of processes and their children."""
    used: dict[str, float] = {}
    for name, pids in groups.items():
        total = 0.0
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                process = psutil.Process(pid)
                # The bench's own process is the parent of all the others: count it alone.
                family = [] if pid == os.getpid() else process.children(recursive=True)
                for member in [process, *family]:
                    with contextlib.suppress(psutil.Error):
                        times = member.cpu_times()
                        total += times.user + times.system
        used[name] = total
    return used


def _postgres_pids() -> list[int]:
    return [p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "postgres"]


def standin_pid(standin: StandIn) -> int:
    return int(getattr(standin, "pid", 0))


@contextmanager
def _standin_process(**options: Any) -> Iterator[StandIn]:
    """The stand-in in a process of its own, so its threads do not slow the bench's client;
    yields a local StandIn that only carries the remote one's address."""
    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe()
    process = context.Process(target=_serve_standin, args=(child, options), daemon=True)
    process.start()
    port = parent.recv()
    address = StandIn()  # never started: its port is replaced by the serving one's
    address.port = port
    address.pid = process.pid  # type: ignore[attr-defined]
    try:
        yield address
    finally:
        process.terminate()
        process.join()


def _serve_standin(conn: Connection, options: dict[str, Any]) -> None:
    with StandIn(**options) as standin:
        conn.send(standin.port)
        threading.Event().wait()


def _spread(seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds] or [0.0]
    return f"median {statistics.median(ms):.1f} ms, p99 {_percentile(ms, 0.99):.1f} ms"


def main() -> None:
    stack = fresh_stack(WORK / "load-stack", "b" * 40)
    _, headers = bench_members(stack, "load", USERS)
    # Each upload is a document of its own (a repeated one would be recognised and skipped).
    pdfs = [english_pdf([filler(seed, 12)]) for seed in range(UPLOADERS * 12)]
    port = free_port()
    reply = " ".join(f"w{n}" for n in range(ANSWER_TOKENS))
    try:
        with _standin_process(
            reply=reply, piece_delay=TOKEN_INTERVAL, stamp_pieces=True
        ) as standin:
            env = environment(stack.settings, **answered_by(standin))
            with (
                running(api_command("127.0.0.1", port), env) as api,
                running(worker_command(WORKER_PROCESSES, WORKER_THREADS, NICE), env) as worker,
                httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers[0]) as client,
            ):
                wait_healthy(client)
                seed = client.post(
                    "/v1/files",
                    files={
                        "file": (
                            "lantern.pdf",
                            english_pdf(["The lantern is lit every evening. " + filler(9, 6)]),
                            "application/pdf",
                        )
                    },
                ).json()
                while client.get(f"/v1/jobs/{seed['job']['id']}").json()["status"] != "succeeded":
                    time.sleep(0.1)
                groups = {
                    "API": [api.pid],
                    "workers": [worker.pid],
                    "stand-in": [standin_pid(standin)],
                    "bench client": [os.getpid()],
                    "Redis": [stack.redis.pid or 0],
                    "Postgres": _postgres_pids(),
                }
                before = _cpu(groups)
                wall = time.perf_counter()
                tally = asyncio.run(_load(f"http://127.0.0.1:{port}", headers, pdfs))
                wall = time.perf_counter() - wall
                tally.cpu = {
                    name: (after - before[name]) / wall for name, after in _cpu(groups).items()
                }
    finally:
        stack.stop()
    print("\n".join(_report(tally, wall)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
