"""Logs as one JSON object per line, each with the request, tenant and job it belongs to.

The API sets `request_id` (and `tenant_id` once the caller is known) for everything logged
while a request is served; a worker sets `job_id` and `tenant_id` while it works on a
message. Every logger of the process goes through one handler: ours, uvicorn's, Dramatiq's,
the libraries'. Secrets are masked before any of this sees a record (core.redaction).
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
tenant_id: ContextVar[str | None] = ContextVar("tenant_id", default=None)
job_id: ContextVar[str | None] = ContextVar("job_id", default=None)
_CONTEXT = {"request_id": request_id, "tenant_id": tenant_id, "job_id": job_id}

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, var in _CONTEXT.items():
            if (value := var.get()) is not None:
                entry[name] = value
        entry.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        return msgspec.json.encode(entry).decode()


class _Stderr(logging.StreamHandler[Any]):
    """Writes to whatever sys.stderr is when a record comes, as logging's last resort does:
    a stream swapped meanwhile (by a test runner, a daemon) is followed, not written after
    it was closed."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


def configure_logging(level: str, style: Literal["json", "text"]) -> None:
    """Send every logger of this process through one stderr handler in `style`."""
    handler = _Stderr()
    handler.setFormatter(JsonFormatter() if style == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "dramatiq"):
        logger = logging.getLogger(name)
        if name == "uvicorn.access" and not logger.handlers:
            continue  # turned off (--no-access-log): uvicorn logs it only if it has a handler
        logger.handlers[:] = []
        logger.propagate = True
