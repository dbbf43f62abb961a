"""Per-user (valid token) or per-client-IP request limits, shared by all API processes.

Two budgets, each a moving window of its own: reads (GET: job status, lists, `/v1/me`,
usage, opening or resuming a stream, the OpenAPI document) are cheap and get
READ_RATE_LIMIT_PER_MINUTE; everything else (questions, searches, uploads, sign-in, and
every change) gets RATE_LIMIT_PER_MINUTE. A page polling a job never spends the budget its
questions need. Every answer says which budget answered (`RateLimit-Policy`, `RateLimit`).

It runs before authentication, so failed logins and bad tokens count against their IP too.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
from dataclasses import dataclass
from typing import cast
from urllib.parse import parse_qsl

from litestar.datastructures import MutableScopeHeaders
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    HTTPScope,
    Message,
    Receive,
    Scope,
    Send,
)

from api.identity import parse_bearer
from api.resources import ApiResources
from api.signin.tokens import InvalidToken, decode_access_token, decode_stream_token
from core.settings import Settings
from transport.rate_limits import Decision

log = logging.getLogger("docuchat.api")
# Health probes come from load balancers every few seconds; nothing else is exempt.
UNLIMITED_PATHS = ("/healthz",)
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Budget:
    name: str  # as `RateLimit-Policy` names it
    per_minute: int  # requests per window
    spent_on: str  # what it is spent on, for the 429's sentence
    window_seconds: int


def budget_for(method: str, settings: Settings) -> Budget:
    window = settings.rate_limit_window_seconds
    if method in READ_METHODS:
        return Budget(
            "reads", settings.read_rate_limit_per_minute, "reads (status, lists, streams)", window
        )
    return Budget(
        "expensive",
        settings.rate_limit_per_minute,
        "questions, searches, uploads, sign-ins and changes",
        window,
    )


def _per(window_seconds: int) -> str:
    return "a minute" if window_seconds == 60 else f"per {window_seconds} s"


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_ip(scope: Scope, trusted: list[Network]) -> str:
    """The peer address, or the nearest untrusted hop of X-Forwarded-For behind trusted proxies."""
    peer = (scope.get("client") or ("unknown", 0))[0]

    def is_trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in trusted)

    if not trusted or not is_trusted(peer):
        return str(peer)
    forwarded = [
        value.decode("latin-1")
        for name, value in scope.get("headers", [])
        if name == b"x-forwarded-for"
    ]
    hops = [hop.strip() for line in forwarded for hop in line.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            return hop
    return str(peer)


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            return parse_bearer(value.decode("latin-1"))
    return None


def _stream_token(scope: Scope) -> str | None:
    """The job-scoped token of an answer stream's URL (EventSource sends no headers)."""
    for key, value in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
        if key == "token":
            return value
    return None


def _user_of(settings: Settings, scope: Scope) -> str | None:
    """The user a valid access or stream token names; a bad token counts against its IP."""
    token = _bearer(scope)
    with contextlib.suppress(InvalidToken):
        if token:
            return str(decode_access_token(settings, token).user_id)
    token = _stream_token(scope)  # a stream's, or a WebSocket's access token
    for decode in (decode_stream_token, decode_access_token):
        with contextlib.suppress(InvalidToken):
            if token:
                return str(decode(settings, token).user_id)
    return None


def spender(resources: ApiResources, scope: Scope) -> tuple[str, str]:
    """Whose budget a request or a socket spends: its token's user, else its client's IP."""
    user = _user_of(resources.settings, scope)
    return ("user", user) if user else ("ip", client_ip(scope, resources.trusted_proxies))


async def spend(resources: ApiResources, method: str, who: tuple[str, str]) -> Decision:
    """Spend one of `who`'s budget for a request of this method (reads or the rest)."""
    budget = budget_for(method, resources.settings)
    item = resources.rate_limiter.budget(budget.per_minute)
    return await resources.rate_limiter.hit(item, budget.name, *who)


def refusal(method: str, settings: Settings, decision: Decision) -> str:
    """The sentence of a refused request's 429 (or a refused frame's error)."""
    budget = budget_for(method, settings)
    return (
        f"too many requests: {budget.spent_on} are limited to {decision.limit} "
        f"{_per(budget.window_seconds)}; retry in {decision.reset_after} s"
    )


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(UNLIMITED_PATHS):
            await self.app(scope, receive, send)
            return
        resources: ApiResources = scope["app"].state.resources
        method = cast("HTTPScope", scope)["method"]
        budget = budget_for(method, resources.settings)
        try:
            decision = await spend(resources, method, spender(resources, scope))
        except Exception:  # Redis trouble must not take the API down; the rest reports it
            log.warning("rate limiter unavailable; request let through", exc_info=True)
            await self.app(scope, receive, send)
            return
        if not decision.allowed:
            await _too_many(send, budget, decision, refusal(method, resources.settings, decision))
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                for name, value in _headers(budget, decision).items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _headers(budget: Budget, decision: Decision) -> dict[str, str]:
    """The budget that answered, in the IETF draft's two forms: `RateLimit-Limit/Remaining/
    Reset` (draft 06 and older clients) and `RateLimit-Policy` with `RateLimit` (draft 10)."""
    remaining = max(0, decision.remaining)
    return {
        "RateLimit-Limit": str(decision.limit),
        "RateLimit-Remaining": str(remaining),
        "RateLimit-Reset": str(decision.reset_after),
        "RateLimit-Policy": f'"{budget.name}";q={decision.limit};w={budget.window_seconds}',
        "RateLimit": f'"{budget.name}";r={remaining};t={decision.reset_after}',
    }


async def _too_many(send: Send, budget: Budget, decision: Decision, detail: str) -> None:
    body = json.dumps({"status": 429, "detail": detail, "budget": budget.name}).encode()
    headers: list[tuple[bytes, bytes]] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(decision.reset_after).encode()),
    ]
    headers += [(k.lower().encode(), v.encode()) for k, v in _headers(budget, decision).items()]
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": 429,
        "headers": headers,
    }
    await send(start)
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(end)
