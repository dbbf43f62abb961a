"""How requests name things: ids in paths and bodies, free text, lists of documents."""

from __future__ import annotations

import uuid

from core.errors import InvalidInput, NotFound


def parse_id(value: str, what: str) -> uuid.UUID:
    """Ids in paths: anything that is not a UUID names nothing, hence 404."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(f"no {what} {value!r}") from None


def parse_field_id(value: str, field: str) -> uuid.UUID:
    """Ids in request bodies: one that is not a UUID is a malformed field, hence 422."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidInput(field, f"{value!r} is not an id (a UUID)") from None


def text_field(value: str, field: str) -> str:
    """Free text from a request body. Postgres text cannot hold NUL, and no person types one:
    a clear 422 here, not a failed insert later."""
    if "\x00" in value:
        raise InvalidInput(field, "contains a NUL character (U+0000), which text cannot hold")
    return value


def parse_document_ids(values: list[str] | None) -> list[uuid.UUID] | None:
    """An optional `document_ids` field: left out means all documents, never an empty list."""
    if values is None:
        return None
    if not values:
        raise InvalidInput("document_ids", "give at least one id, or leave the field out")
    return [parse_field_id(value, "document_ids") for value in values]
