"""A stand-in for the paid OpenAI API, speaking its wire protocol over real HTTP.

`POST /v1/embeddings` answers with deterministic bag-of-words vectors (texts sharing words
point the same way) and reports usage. Tests can make it fail or stall.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

from core.embedded import free_port


def bag_of_words_vector(text: str, dimension: int) -> list[float]:
    vector = np.zeros(dimension)
    for word in re.findall(r"\w+", text.lower()):
        digest = hashlib.sha256(word.encode()).digest()
        vector[int.from_bytes(digest[:4], "big") % dimension] += 1.0
    norm = np.linalg.norm(vector)
    return list(vector / norm) if norm else [0.0] * dimension


@dataclass
class StandIn:
    dimension: int = 64
    requests: list[dict[str, Any]] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)  # statuses for the next requests
    stall_seconds: float = 0.0

    def __post_init__(self) -> None:
        self.port = free_port()
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                standin.requests.append(
                    {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
                )
                if standin.stall_seconds:
                    time.sleep(standin.stall_seconds)
                if standin.failures:
                    status = standin.failures.pop(0)
                    self._send(status, {"error": {"message": f"stand-in failure {status}"}})
                elif self.path == "/v1/embeddings":
                    self._send(200, standin.embeddings(body))
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def embeddings(self, body: dict[str, Any]) -> dict[str, Any]:
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        tokens = sum(len(re.findall(r"\w+", text)) for text in inputs)
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
