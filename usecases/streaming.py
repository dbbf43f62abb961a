"""Pumping a provider's generation into a chat job's event stream, stoppable at any time.

The provider runs on a thread of its own; its pieces go to the job's EventWriter
(transport/events.py), and while the provider is silent the cancel key is polled, so a
cancelled job stops within CANCEL_POLL_SECONDS either way.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from pipeline.generation import Finished
from transport.events import EventWriter


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
