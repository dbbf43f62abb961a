"""Keyset pagination: an opaque cursor holding the (timestamp, id) of a page's last row."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from core.errors import InvalidInput

Row = TypeVar("Row")


def encode_cursor(at: datetime, ident: uuid.UUID) -> str:
    raw = f"{at.isoformat()}|{ident}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, ident = raw.partition("|")
        return datetime.fromisoformat(at), uuid.UUID(ident)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput(
            "cursor", "not a cursor this API gave out; start again without one"
        ) from None


def page_of(
    rows: Sequence[Row], limit: int, key: Callable[[Row], tuple[datetime, uuid.UUID]]
) -> tuple[list[Row], str | None]:
    """The first `limit` of `rows` (fetched as limit + 1) and the next page's cursor."""
    kept = list(rows[:limit])
    return kept, encode_cursor(*key(kept[-1])) if len(rows) > limit and kept else None
