"""Validation and normal forms of the names people type: tenant slugs and e-mail addresses."""

from __future__ import annotations

import re

from email_validator import EmailNotValidError, validate_email

from core.errors import InvalidInput

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
MAX_EMAIL_LENGTH = 254


def validate_slug(slug: str) -> str:
    if not SLUG_PATTERN.fullmatch(slug):
        raise InvalidInput(
            "slug",
            f"{slug!r} is not a valid tenant slug: use 1-63 lower-case letters, digits and "
            "inner hyphens",
        )
    return slug


def normalise_email(raw: str) -> str:
    """Trimmed, syntax-checked and lower-cased, so one person has one account per tenant."""
    candidate = raw.strip()
    if not candidate or len(candidate) > MAX_EMAIL_LENGTH:
        raise InvalidInput("email", "must be an e-mail address of at most 254 characters")
    try:
        result = validate_email(candidate, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput("email", f"{candidate!r} is not a valid e-mail address: {exc}") from None
    return result.normalized.lower()
