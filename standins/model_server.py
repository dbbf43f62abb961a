"""A stand-in for the paid OpenAI API, speaking its wire protocol over real HTTP: the model
server of the tests, the benches and the examples.

- `POST /v1/embeddings` answers with deterministic bag-of-words vectors (texts sharing words
  point the same way) and reports usage.
- `POST /v1/chat/completions` with `stream: true` answers in Server-Sent Events over a chunked
  HTTP/1.1 body, as OpenAI does: a role chunk, one chunk per piece of `reply`, a finish chunk,
  a usage chunk when `stream_options.include_usage` asks for it, then `data: [DONE]`.

Tests can make it fail (`failures`: statuses for the next requests), stall before answering
(`stall_seconds`), pause between pieces (`piece_delay`), stall mid-answer (`stall_after`) or
drop the connection mid-answer (`drop_after`). With `context_tokens` set, a prompt larger than
that (its words and symbols counted, roughly as a model's tokenizer would) is refused as
servers refuse it: OpenAI's 400 `context_length_exceeded` (`overflow = "error"`), or
llama.cpp's 200 with an empty stream (`overflow = "empty"`).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

DEFAULT_REPLY = "The lantern is lit every evening by the fishermen [1]."
# What the stand-in reports as the prompt's size, so tests can tell its numbers from tiktoken's.
PROMPT_TOKENS_REPORTED = 1234


def bag_of_words_vector(text: str, dimension: int) -> list[float]:
    vector = np.zeros(dimension)
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.sha256(word.encode()).digest()
        vector[int.from_bytes(digest[:4], "big") % dimension] += 1.0
    norm = np.linalg.norm(vector)
    return list(vector / norm) if norm else [0.0] * dimension


def pieces_of(text: str) -> list[str]:
    """How the stand-in splits a reply into streamed pieces: a word and its space each."""
    return re.findall(r"\S+\s*", text)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up mid-answer (a cancelled generation) is not news."""


@dataclass
class StandIn:
    dimension: int = 64
    requests: list[dict[str, Any]] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)  # statuses for the next requests
    stall_seconds: float = 0.0
    reply: str = DEFAULT_REPLY
    piece_delay: float = 0.0
    stall_after: int | None = None  # pieces sent before stalling for `stall_seconds`
    drop_after: int | None = None  # pieces sent before the connection is dropped
    report_usage: bool = True
    context_tokens: int | None = None
    overflow: str = "error"  # or "empty"
    # Each piece is the time it was sent (time.time(), and a space) instead of a word of
    # `reply`: a client can tell every token's latency and whether any was lost or doubled.
    stamp_pieces: bool = False
    # What it told its clients they spent: (model, prompt tokens, completion tokens).
    reported_usage: list[tuple[str, int, int]] = field(default_factory=list)
    # (received, first piece sent) per streamed answer, time.perf_counter() seconds.
    first_piece_timings: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.epoch = 0  # how many resets: a request from before one is dropped, not answered
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                self.received, epoch = time.perf_counter(), standin.epoch
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                standin.requests.append(
                    {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
                )
                if standin.stall_seconds and standin.stall_after is None:
                    time.sleep(standin.stall_seconds)
                if standin.epoch != epoch:
                    self.close_connection = True  # reset meanwhile: its failures are not ours
                elif standin.failures:
                    status = standin.failures.pop(0)
                    self._send(status, {"error": {"message": f"stand-in failure {status}"}})
                elif self.path == "/v1/embeddings":
                    self._send(200, standin.embeddings(body))
                elif self.path == "/v1/chat/completions" and standin.over_context(body):
                    if standin.overflow == "empty":
                        self._empty_stream()
                    else:
                        message = (
                            f"This model's maximum context length is {standin.context_tokens} "
                            f"tokens. However, your messages resulted in {standin.size(body)} "
                            "tokens. Please reduce the length of the messages."
                        )
                        error = {"message": message, "code": "context_length_exceeded"}
                        self._send(400, {"error": error | {"type": "invalid_request_error"}})
                elif self.path == "/v1/chat/completions" and body.get("stream"):
                    self._stream_chat(body)
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _chunk(self, payload: dict[str, Any] | str) -> None:
                text = payload if isinstance(payload, str) else json.dumps(payload)
                data = f"data: {text}\n\n".encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _empty_stream(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

            def _stream_chat(self, body: dict[str, Any]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                base = {
                    "id": "chatcmpl-standin",
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": body["model"],
                }

                def choice(delta: dict[str, str], finish: str | None = None) -> dict[str, Any]:
                    return base | {
                        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
                    }

                self._chunk(choice({"role": "assistant", "content": ""}))
                pieces = pieces_of(standin.reply)
                for i, piece in enumerate(pieces):
                    if i == standin.drop_after:
                        self.close_connection = True
                        self.connection.close()  # no final chunk: a broken body
                        return
                    if i == standin.stall_after:
                        time.sleep(standin.stall_seconds)
                    if standin.piece_delay:
                        time.sleep(standin.piece_delay)
                    if standin.stamp_pieces:
                        piece = f"{time.time():.6f} "
                    self._chunk(choice({"content": piece}))
                    if i == 0:
                        timing = (self.received, time.perf_counter())
                        standin.first_piece_timings.append(timing)
                self._chunk(choice({}, "stop"))
                options = body.get("stream_options") or {}
                if standin.report_usage and options.get("include_usage"):
                    usage = {
                        "prompt_tokens": PROMPT_TOKENS_REPORTED,
                        "completion_tokens": len(pieces),
                        "total_tokens": PROMPT_TOKENS_REPORTED + len(pieces),
                    }
                    self._chunk(base | {"choices": [], "usage": usage})
                    standin.reported_usage.append(
                        (body["model"], PROMPT_TOKENS_REPORTED, len(pieces))
                    )
                self._chunk("[DONE]")
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

        self.server = _QuietServer(("127.0.0.1", 0), Handler)  # a free port, taken at once
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def reset(self, **settings: Any) -> None:
        """Back to a new stand-in's settings, these apart, with nothing recorded and a stalled
        request left unanswered (on the same port: whoever was given its address keeps it)."""
        self.epoch += 1
        for each in fields(self):
            if each.name in settings:
                setattr(self, each.name, settings[each.name])
            elif callable(each.default_factory):
                setattr(self, each.name, each.default_factory())
            else:
                setattr(self, each.name, each.default)

    def size(self, body: dict[str, Any]) -> int:
        """A prompt's size as a model's tokenizer might count it: words and symbols."""
        text = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
        return len(re.findall(r"\w+|[^\w\s]", text))

    def over_context(self, body: dict[str, Any]) -> bool:
        return self.context_tokens is not None and self.size(body) > self.context_tokens

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        return [r["body"] for r in self.requests if r["path"] == "/v1/chat/completions"]

    def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        tokens = sum(len(re.findall(r"\w+", text)) for text in inputs)
        self.reported_usage.append((body["model"], tokens, 0))
        return {
            "object": "list",
            "model": body["model"],
            "data": [
                {
                    "object": "embedding",
                    "index": i,
                    "embedding": bag_of_words_vector(t, self.dimension),
                }
                for i, t in enumerate(inputs)
            ],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def __enter__(self) -> StandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
