"""uvicorn's HTTP protocol (httptools) with a deadline on every request's head.

uvicorn closes a connection that idles between two requests (`--timeout-keep-alive`), but
not one that connects and sends nothing, nor one that sends half a request line and headers
and stops: 750 such connections held 900 file descriptors of an API process, for as long as
their clients liked. Here the request line and headers must arrive within
HEAD_TIMEOUT_SECONDS of the connection (or of the first byte of a later request on it);
past that the connection gets 408 and is closed. The body is not held to it: an upload may
take as long as the network needs (its route paces it, api/uploads.py). A connection answered
before its body has all arrived is ended, so a refused body is never read on: the answer goes
out, then the end of the sending side, and what the client still sends is taken and dropped for
at most LINGER_SECONDS or LINGER_BYTES before the socket closes (as nginx's lingering close
does). Closing at once would reset the connection when the rest of the body arrives, and a
reset can destroy the answer before the client has read it.

Served with `uvicorn --http api.http_protocol:HeadTimeoutProtocol` (the Procfile, `docuchat
dev` and the tests all do).
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Far beyond what any client needs to send a few hundred bytes of headers.
HEAD_TIMEOUT_SECONDS = 10.0
PROTOCOL = "api.http_protocol:HeadTimeoutProtocol"
# What a client may still send after its answer, before the socket closes.
LINGER_SECONDS = 2.0
LINGER_BYTES = 64 * 1024


def _timeout_response(seconds: float) -> bytes:
    detail = f"the request's line and headers did not arrive within {seconds:g} s"
    body = msgspec.json.encode({"status": 408, "detail": detail})
    head = (
        "HTTP/1.1 408 Request Timeout\r\n"
        "content-type: application/json\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


class HeadTimeoutProtocol(HttpToolsProtocol):
    head_timeout_seconds = HEAD_TIMEOUT_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._linger_left: int | None = None  # bytes still taken after the answer, when ending

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()  # a later request on a kept-alive connection: its head is due in time too

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        if self._linger_left is None:
            super().data_received(data)
            return
        self._linger_left -= len(data)  # the rest of a refused body: dropped
        if self._linger_left < 0:
            self.transport.close()

    def on_response_complete(self) -> None:
        # Answered before the body had all arrived (401, 413, 415, 429, ...): uvicorn would
        # read the rest and throw it away for as long as the client cared to send it, with no
        # timer running. End the connection instead, without resetting it.
        if self.cycle.more_body and not self.transport.is_closing():
            self.server_state.total_requests += 1
            self._linger_left = LINGER_BYTES
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self.flow.resume_reading()
            self.loop.call_later(LINGER_SECONDS, self.transport.close)
            return
        super().on_response_complete()

    def _arm(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(
                self.head_timeout_seconds, self._head_timed_out
            )

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.transport.write(_timeout_response(self.head_timeout_seconds))
            self.transport.close()
