"""Secrets never reach a log line: sign-in codes, access and stream tokens, API keys and
passwords are masked in every record of every logger of the process (ours, uvicorn's access
log, Dramatiq's, the HTTP clients'), before any handler formats it.

The stream token travels in a URL (`?token=`), because browsers' EventSource cannot send
headers, so the access log is where it would otherwise land.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode

MASK = "[redacted]"

_SECRETS: list[tuple[re.Pattern[str], str]] = [
    # A JWT anywhere: access and stream tokens, in URLs, headers or error messages.
    (re.compile(r"\beyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*"), MASK),
    # Secrets in query strings: ?token=..., &api_key=...
    (
        re.compile(r"(?i)([?&](?:token|access_token|code|api_key|key|password)=)[^&\s\"'#]+"),
        rf"\1{MASK}",
    ),
    # Authorization headers of any scheme.
    (re.compile(r"(?i)\b(bearer|basic)\s+[\w.~+/=-]{8,}"), rf"\1 {MASK}"),
    # Provider API keys (OpenAI style sk-..., sk-proj-...).
    (re.compile(r"\bsk-[\w-]{8,}"), MASK),
    # Named fields in JSON, reprs or key=value text; a sign-in code is six digits.
    (
        re.compile(
            r"(?i)([\"']?\b(?:password|passwd|secret|api_key|apikey|jwt_secret|token)\b[\"']?"
            r"\s*[:=]\s*[\"']?)(?!\[redacted\])[^\s\"',}&]+"
        ),
        rf"\1{MASK}",
    ),
    (re.compile(r"(?i)([\"']?\bcode\b[\"']?\s*[:=]\s*[\"']?)\d{6}\b"), rf"\1{MASK}"),
    # Passwords in URLs: postgresql://user:password@host, redis://:password@host.
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@/\s]+@"), rf"\1{MASK}@"),
]


# Query parameters whose values are secrets, by their decoded names.
SECRET_PARAMETERS = frozenset({"token", "access_token", "code", "api_key", "key", "password"})


def redact_query(query: str) -> str:
    """A query string fit for a log line: parsed as the server parses it (percent-escapes
    decoded, so `?%74oken=%65yJ...` is the token it serves), secret values masked, the rest
    re-encoded."""
    pairs = parse_qsl(query, keep_blank_values=True)
    masked = [
        (name, MASK if name.lower() in SECRET_PARAMETERS else redact(value))
        for name, value in pairs
    ]
    return urlencode(masked, safe="[]")


def redact(text: str) -> str:
    """`text` with every secret it holds masked."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Mask the record's message and traceback in place. The message is formatted here, once;
    uvicorn's access log keeps its arguments, which its formatter reads as a tuple."""
    if record.name == "uvicorn.access" and isinstance(record.args, tuple):
        record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
    else:
        # A malformed call is left as it is: logging reports it when a handler formats it.
        with contextlib.suppress(TypeError, ValueError):
            record.msg, record.args = redact(record.getMessage()), None
    if record.exc_info and not record.exc_text:
        # Formatters use exc_text when it is set: the traceback is masked once, here.
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    return record


def install_log_redaction() -> None:
    """Mask secrets in every log record this process makes from now on; safe to call twice."""
    current = logging.getLogRecordFactory()
    if getattr(current, "redacts", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(current(*args, **kwargs))

    factory.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
