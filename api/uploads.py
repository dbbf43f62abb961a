"""Receive a multipart upload as a stream: to a temporary file, hashed and counted on the way,
stopped the moment it passes the size limit. The body is never held in memory whole.

A body must keep coming: 408 after UPLOAD_IDLE_SECONDS without a byte, or when fewer than
UPLOAD_MIN_BYTES_PER_SECOND arrived over a window of UPLOAD_RATE_WINDOW_SECONDS. Either way,
and past the size limit, the temporary file is removed and the connection closed (the rest
of the body is not read).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import time
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from litestar import Request
from litestar.exceptions import HTTPException
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from core.errors import InvalidInput
from pipeline.errors import EmptyFile, FileTooLarge

FIELD = "file"
# Room for the multipart framing and a few small form fields around the file itself.
ENVELOPE_BYTES = 1 << 20
MAX_FILENAME_CHARS = 255


@dataclass
class ReceivedFile:
    path: Path
    filename: str
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class Pace:
    """How slowly a body may arrive (the upload settings)."""

    idle_seconds: float
    min_bytes_per_second: int
    window_seconds: float


def _too_slow(detail: str) -> HTTPException:
    return HTTPException(status_code=408, detail=detail, headers={"Connection": "close"})


async def _paced(chunks: AsyncIterator[bytes], pace: Pace) -> AsyncIterator[bytes]:
    """The body's chunks, as long as they arrive at the pace; 408 otherwise."""
    window_start, window_bytes = time.monotonic(), 0
    while True:
        try:
            data = await asyncio.wait_for(anext(chunks), pace.idle_seconds)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise _too_slow(
                f"no byte of the upload arrived for {pace.idle_seconds:g} s "
                "(UPLOAD_IDLE_SECONDS); send it again"
            ) from None
        window_bytes += len(data)
        elapsed = time.monotonic() - window_start
        if elapsed >= pace.window_seconds:
            if window_bytes < pace.min_bytes_per_second * elapsed:
                raise _too_slow(
                    f"the upload arrived at {window_bytes / elapsed:.0f} bytes a second over "
                    f"{elapsed:.0f} s, slower than the {pace.min_bytes_per_second} allowed "
                    "(UPLOAD_MIN_BYTES_PER_SECOND); send it again"
                )
            window_start, window_bytes = time.monotonic(), 0
        yield data


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    is_file: bool = False


class _Receiver:
    """python-multipart callbacks that write the `file` field to disk as it arrives."""

    def __init__(self, out: IO[bytes], limit_bytes: int, limit_mb: int) -> None:
        self.out = out
        self.limit_bytes = limit_bytes
        self.limit_mb = limit_mb
        self.digest = hashlib.sha256()
        self.size = 0
        self.filename: str | None = None
        self.files_seen = 0
        self._part = _Part()
        self._header_field = b""
        self._header_value = b""

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
        }

    def on_part_begin(self) -> None:
        self._part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._part.headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._part.headers.get(b"content-disposition", b""))
        if options.get(b"name") != FIELD.encode():
            return  # other form fields are ignored
        self.files_seen += 1
        if self.files_seen > 1:
            raise InvalidInput(FIELD, "send one file per upload")
        self._part.is_file = True
        self.filename = clean_filename(options.get(b"filename", b"").decode("utf-8", "replace"))

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._part.is_file:
            return
        piece = data[start:end]
        self.size += len(piece)
        if self.size > self.limit_bytes:
            raise FileTooLarge(self.limit_mb)
        self.digest.update(piece)
        self.out.write(piece)


def clean_filename(raw: str) -> str:
    """A display name: the last path segment, no control characters, at most 255 characters."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C" or ch == "\u200c")
    name = name.strip().strip(".") or "document.pdf"
    return name[:MAX_FILENAME_CHARS]


def _boundary(request: Request[Any, Any, Any]) -> bytes:
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise HTTPException(
            status_code=415,
            detail=f"send the file as multipart/form-data in a field named `{FIELD}`",
        )
    return boundary


async def receive_upload(
    request: Request[Any, Any, Any], limit_mb: int, pace: Pace, folder: Path | None = None
) -> ReceivedFile:
    """Stream the request's `file` field into a temporary file (the caller deletes it)."""
    limit_bytes = limit_mb * 1024 * 1024
    boundary = _boundary(request)
    announced = request.headers.get("content-length")
    if announced and announced.isdigit() and int(announced) > limit_bytes + ENVELOPE_BYTES:
        raise FileTooLarge(limit_mb)
    handle, name = tempfile.mkstemp(prefix="docuchat-upload-", suffix=".pdf", dir=folder)
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as out:
            receiver = _Receiver(out, limit_bytes, limit_mb)
            parser = MultipartParser(boundary, receiver.callbacks())  # type: ignore[arg-type]
            streamed = 0
            async for data in _paced(aiter(request.stream()), pace):
                streamed += len(data)
                if streamed > limit_bytes + ENVELOPE_BYTES:
                    raise FileTooLarge(limit_mb)
                try:
                    parser.write(data)
                except MultipartParseError:
                    raise InvalidInput(FIELD, "the multipart/form-data body is malformed") from None
            parser.finalize()
        if receiver.filename is None:
            raise InvalidInput(
                FIELD, f"no file: send the document in a multipart field named `{FIELD}`"
            )
        if receiver.size == 0:
            raise EmptyFile()
        return ReceivedFile(path, receiver.filename, receiver.size, receiver.digest.hexdigest())
    except BaseException:
        path.unlink(missing_ok=True)  # noqa: ASYNC240 - one local unlink, not worth a thread
        raise
