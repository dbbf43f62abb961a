"""The error tree every layer raises; `api/` maps it to HTTP, `workers/` to job outcomes.

DocuChatError
 ├── ConfigurationError      settings or environment unusable: the process refuses to start
 ├── InvalidInput            a value from a caller is malformed (slug, e-mail, ...)
 ├── NotFound                the named thing does not exist (or is not the caller's)
 ├── Conflict                the thing exists already, or is in a state that forbids the request
 ├── Gone                    the thing existed but is no longer kept
 ├── AuthenticationFailed, PermissionDenied, SignInRejected, RateLimited   (who may ask)
 ├── ServiceUnavailable      a backing service (queue, database, provider) is down: retry later
 └── PipelineError           see pipeline/errors.py
"""


class DocuChatError(Exception):
    """Base of every error DocuChat raises on purpose."""


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


class ServiceUnavailable(DocuChatError):
    """A service DocuChat depends on is unreachable; the request may succeed later (HTTP 503)."""
