"""Writing a chat job's events to its Redis Stream while the provider generates.

The first piece of text goes out at once; pieces arriving within DELTA_BATCH_SECONDS of the
last write are sent together, so a fast model costs Redis one write per few milliseconds,
not one per token. Every write also reads the job's cancel key, and while the provider is
silent the key is polled, so a cancelled job stops within CANCEL_POLL_SECONDS either way.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from redis import Redis

from core.job_streams import STREAM_MAXLEN, cancel_key, event_fields, stream_key
from pipeline.generation import Finished

DELTA_BATCH_SECONDS = 0.005
CANCEL_POLL_SECONDS = 0.2


class EventWriter:
    """Appends one job's events to its stream and keeps the stream alive for the retention."""

    def __init__(self, redis: Redis, job_id: uuid.UUID, retention_seconds: int) -> None:
        self._redis = redis
        self._key = stream_key(job_id)
        self._cancel_key = cancel_key(job_id)
        self._retention = retention_seconds
        self._pending: list[str] = []
        self._last_write = 0.0
        self._last_poll = 0.0
        self.cancelled = False

    def emit(self, event: str, payload: Any) -> None:
        """Write an event now, after any text still waiting."""
        self._write([*self._delta_events(), (event, payload)])

    def delta(self, text: str) -> None:
        self._pending.append(text)
        if time.monotonic() - self._last_write >= DELTA_BATCH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._write(self._delta_events())

    def discard(self) -> None:
        """Delete the stream: its job is gone, nobody may read it again."""
        self._pending = []
        self._redis.delete(self._key)

    @property
    def waiting(self) -> bool:
        return bool(self._pending)

    def wait_budget(self) -> float:
        """How long the caller may wait for more text before it must flush or poll."""
        if self._pending:
            return max(0.0, DELTA_BATCH_SECONDS - (time.monotonic() - self._last_write))
        return CANCEL_POLL_SECONDS

    def poll_cancelled(self) -> bool:
        if not self.cancelled and time.monotonic() - self._last_poll >= CANCEL_POLL_SECONDS:
            self._last_poll = time.monotonic()
            self.cancelled = bool(self._redis.exists(self._cancel_key))
        return self.cancelled

    def _delta_events(self) -> list[tuple[str, Any]]:
        if not self._pending:
            return []
        text, self._pending = "".join(self._pending), []
        return [("delta", {"text": text})]

    def _write(self, events: list[tuple[str, Any]]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for event, payload in events:
            pipe.xadd(self._key, event_fields(event, payload), maxlen=STREAM_MAXLEN)  # type: ignore[arg-type]
        pipe.expire(self._key, self._retention)
        pipe.exists(self._cancel_key)
        results = pipe.execute()
        self._last_write = self._last_poll = time.monotonic()
        self.cancelled = self.cancelled or bool(results[-1])


@dataclass
class Relayed:
    """What came of relaying a generation: its text, and how it ended."""

    text: str
    finished: Finished | None = None
    cancelled: bool = False
    error: BaseException | None = None
    first_piece_at: float | None = None  # time.time() of the first piece of text


_DONE = object()


@dataclass(frozen=True)
class _Raised:
    error: BaseException


def relay_generation(pieces: Iterator[str | Finished], writer: EventWriter) -> Relayed:
    """Pump the provider's pieces into the stream until it finishes, fails or is cancelled.

    The provider runs on its own thread, so a silent provider cannot delay a cancellation.
    """
    inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in pieces:
                inbox.put(item)
                if stop.is_set():
                    break
        except BaseException as exc:
            inbox.put(_Raised(exc))
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()  # ends the provider's HTTP response when we stopped early
            inbox.put(_DONE)

    threading.Thread(target=produce, name="provider-stream", daemon=True).start()
    text: list[str] = []
    relayed = Relayed("")
    try:
        while True:
            try:
                item = inbox.get(timeout=writer.wait_budget())
            except queue.Empty:
                writer.flush()
                if writer.poll_cancelled():
                    relayed.cancelled = True
                    break
                continue
            if item is _DONE:
                break
            if isinstance(item, _Raised):
                relayed.error = item.error
                break
            if isinstance(item, Finished):
                relayed.finished = item
                continue
            assert isinstance(item, str)
            if relayed.first_piece_at is None:
                relayed.first_piece_at = time.time()
            text.append(item)
            writer.delta(item)
            if writer.cancelled:
                relayed.cancelled = True
                break
    finally:
        stop.set()
        writer.flush()
    relayed.text = "".join(text)
    return relayed
