"""Asking questions and reading answers over real SSE, shared by the chat tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from httpx_sse import connect_sse
from sqlalchemy import Engine, text


@dataclass
class Event:
    event: str
    id: str
    data: Any


@dataclass
class Answer:
    events: list[Event] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [e.event for e in self.events]

    @property
    def text(self) -> str:
        """The answer as a client shows it: the text since the last `restart`, if any."""
        names = self.names
        since = len(names) - names[::-1].index("restart") if "restart" in names else 0
        return "".join(e.data["text"] for e in self.events[since:] if e.event == "delta")

    def last(self, name: str) -> Any:
        return next(e.data for e in reversed(self.events) if e.event == name)


def ask(client: httpx.Client, message: str, **fields: Any) -> dict[str, Any]:
    response = client.post("/v1/chat", json={"message": message, **fields})
    assert response.status_code == 202, response.text
    started: dict[str, Any] = response.json()
    return started


def read_stream(
    client: httpx.Client,
    url: str,
    *,
    last_event_id: str | None = None,
    stop_after_deltas: int | None = None,
    headers: dict[str, str] | None = None,
    on_event: Callable[[Event], None] | None = None,
) -> Answer:
    """Read events until the answer's last one (or `stop_after_deltas`), then hang up;
    `on_event` hears of each as it comes."""
    answer = Answer()
    sent = dict(headers or {})
    if last_event_id:
        sent["Last-Event-ID"] = last_event_id
    with connect_sse(client, "GET", url, headers=sent, timeout=30) as source:
        assert source.response.status_code == 200, source.response.read()
        assert source.response.headers["content-type"].startswith("text/event-stream")
        for sse in source.iter_sse():
            if not sse.data:
                continue  # a keep-alive that carries the reconnection delay: no event
            answer.events.append(Event(sse.event, sse.id, json.loads(sse.data)))
            if on_event is not None:
                on_event(answer.events[-1])
            if sse.event in ("end", "error"):
                break
            deltas = answer.names.count("delta")
            if stop_after_deltas is not None and deltas >= stop_after_deltas:
                break
    return answer


def bare_client(base_url: str) -> httpx.Client:
    """A client with no token and no tenant header, like a browser's EventSource."""
    return httpx.Client(base_url=base_url, timeout=30)


def assert_saved_once(
    client: httpx.Client, engine: Engine, started: dict[str, Any], reply: str
) -> int:
    """The answer `started` is saved once, as `reply`, its usage counted once per kind;
    returns how many times the sweep sent its job again."""
    messages = client.get(f"/v1/sessions/{started['session_id']}/messages").json()
    assistant = [m["content"] for m in messages["messages"] if m["role"] == "assistant"]
    assert assistant == [reply]
    with engine.connect() as conn:
        kinds = conn.execute(
            text("SELECT kind FROM usage_records WHERE job_id = :j ORDER BY kind"),
            {"j": started["job_id"]},
        ).scalars()
        assert list(kinds) == ["chat", "embedding"]  # counted once each
        requeues = conn.execute(
            text("SELECT requeues FROM jobs WHERE id = :j"), {"j": started["job_id"]}
        ).scalar_one()
    return int(requeues)
