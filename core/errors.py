"""The error tree every layer raises; `api/` maps it to HTTP, `workers/` to job outcomes.

DocuChatError
 ├── ConfigurationError      settings or environment unusable: the process refuses to start
 ├── InvalidInput            a value from a caller is malformed (slug, e-mail, ...)
 ├── NotFound                the named thing does not exist (or is not the caller's)
 ├── Conflict                the thing exists already, or is in a state that forbids the request
 ├── Gone                    the thing existed but is no longer kept
 ├── AuthenticationFailed, PermissionDenied, SignInRejected   (who may ask)
 ├── RateLimited             too many requests for now
 │    └── QuotaExceeded      the tenant spent its monthly tokens
 ├── ServiceUnavailable      a backing service (queue, database, provider) is down: retry later
 ├── InsufficientStorage     the server's disk is too full to keep more: an operator frees space
 └── PipelineError           see pipeline/errors.py
"""

from __future__ import annotations

import math
from datetime import UTC, datetime


class DocuChatError(Exception):
    """Base of every error DocuChat raises on purpose."""

    def __reduce__(self) -> tuple[object, ...]:
        # Subclasses take other arguments than their message: pickle (to cross a process
        # boundary) the message and attributes, not the constructor's arguments.
        return (_rebuild, (type(self), str(self), self.__dict__))


def _rebuild(kind: type[DocuChatError], message: str, state: dict[str, object]) -> DocuChatError:
    error = kind.__new__(kind)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class ConfigurationError(DocuChatError):
    """The settings or the environment cannot run the service; the message says what to fix."""


class InvalidInput(DocuChatError):
    """A caller-supplied value is malformed."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFound(DocuChatError):
    """The named resource does not exist for this caller."""


class Conflict(DocuChatError):
    """The resource already exists."""


class Gone(DocuChatError):
    """The resource existed but is no longer available (HTTP 410)."""


class AuthenticationFailed(DocuChatError):
    """No valid credentials: missing, malformed, expired or foreign token (HTTP 401)."""


class PermissionDenied(DocuChatError):
    """Authenticated, but not allowed here: another tenant, a disabled account (HTTP 403)."""


class SignInRejected(DocuChatError):
    """A sign-in code is wrong, expired, used or burned; the message says what to do next."""


class RateLimited(DocuChatError):
    """Too many requests; retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class QuotaExceeded(RateLimited):
    """The tenant has used its monthly token quota; nothing that spends tokens is accepted
    until the quota month resets."""

    def __init__(self, tenant: str, used: int, quota: int, resets_at: datetime, now: datetime):
        super().__init__(
            f"tenant {tenant!r} has used {used:,} of its {quota:,} tokens this month, so new "
            f"questions, searches and uploads are refused until the quota resets on "
            f"{resets_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC; an operator can raise it with "
            "`docuchat tenant set-quota`",
            retry_after=math.ceil((resets_at - now).total_seconds()),
        )
        self.used, self.quota, self.resets_at = used, quota, resets_at


class InsufficientStorage(DocuChatError):
    """The server's disk is too full to keep what was sent (HTTP 507)."""


class ServiceUnavailable(DocuChatError):
    """A service DocuChat depends on is unreachable; the request may succeed later (HTTP 503)."""
