"""Receive a multipart upload as a stream: to a temporary file, hashed and counted on the way,
stopped the moment it passes the size limit. The body is never held in memory whole, and its
temporary file is removed whatever stops it (a body that stalls or trickles gets 408 from
api/body_pace.py; one past the limit 413, and the connection is closed).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import unicodedata
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
    request: Request[Any, Any, Any], limit_mb: int, folder: Path | None = None
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
            async for data in request.stream():
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
