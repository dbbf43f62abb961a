"""`GET /v1/usage`: tokens spent in the last 24 hours and 7 days, and the monthly quota; and
the quota check every token-spending route makes before it accepts work."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

import msgspec
from litestar import Router, get
from litestar.params import QueryParameter

from api.identity import CallerDep
from api.resources import ResourcesDep
from core.errors import InvalidInput, PermissionDenied
from db.engine import async_unit_of_work
from db.usage import QuotaState, Tally, UsageReport, UsageWindow, quota_state, usage_report

SCOPES = ("user", "tenant")


class Tokens(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    requests: int  # metered model calls: one per answer, per embedded question or document
    # Of total_tokens, those counted with tiktoken because the provider reported none (the
    # local embedder, the offline answerer, a server that streams no usage): an estimate.
    estimated_tokens: int


class UserTokens(msgspec.Struct):
    user_id: str | None  # None: the records of users deleted since
    email: str | None
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    requests: int
    estimated_tokens: int


class Window(msgspec.Struct, omit_defaults=True):
    since: datetime
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    requests: int
    estimated_tokens: int  # counted with tiktoken: see Tokens
    by_model: dict[str, Tokens]
    by_kind: dict[str, Tokens]  # chat | embedding
    by_user: list[UserTokens] | None = None  # scope=tenant only, biggest spender first


class Quota(msgspec.Struct):
    monthly_tokens: int | None  # None: no quota
    used_tokens: int  # by the whole tenant since period_start
    remaining_tokens: int | None
    period_start: datetime
    resets_at: datetime


class UsageOut(msgspec.Struct):
    scope: str  # one of SCOPES
    at: datetime
    last_24h: Window
    last_7d: Window
    quota: Quota


def _tokens(tally: Tally) -> Tokens:
    return Tokens(
        tally.prompt_tokens,
        tally.completion_tokens,
        tally.total_tokens,
        tally.requests,
        tally.estimated_tokens,
    )


def _window(window: UsageWindow, emails: dict[uuid.UUID, str], tenant: bool) -> Window:
    total = window.total
    by_user = None
    if tenant:
        spenders = sorted(window.by_user.items(), key=lambda item: -item[1].total_tokens)
        by_user = [
            UserTokens(
                str(user) if user else None,
                emails.get(user) if user else None,
                tally.prompt_tokens,
                tally.completion_tokens,
                tally.total_tokens,
                tally.requests,
                tally.estimated_tokens,
            )
            for user, tally in spenders
        ]
    return Window(
        since=_utc(window.since),
        prompt_tokens=total.prompt_tokens,
        completion_tokens=total.completion_tokens,
        total_tokens=total.total_tokens,
        requests=total.requests,
        estimated_tokens=total.estimated_tokens,
        by_model={model: _tokens(t) for model, t in sorted(window.by_model.items())},
        by_kind={kind: _tokens(t) for kind, t in sorted(window.by_kind.items())},
        by_user=by_user,
    )


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def _quota(state: QuotaState) -> Quota:
    return Quota(
        state.monthly_tokens,
        state.used,
        state.remaining,
        _utc(state.period_start),
        _utc(state.resets_at),
    )


def usage_out(scope: str, report: UsageReport, quota: QuotaState) -> UsageOut:
    tenant = scope == "tenant"
    windows = {name: _window(w, report.emails, tenant) for name, w in report.windows.items()}
    return UsageOut(scope, _utc(report.at), windows["last_24h"], windows["last_7d"], _quota(quota))


@get(
    "/",
    summary="Tokens spent in the last 24 hours and 7 days (yours, or the tenant's for admins)",
)
async def get_usage(
    resources: ResourcesDep,
    caller: CallerDep,
    scope_: Annotated[
        str,
        QueryParameter(
            name="scope",
            enum=SCOPES,
            description="`user`: your own usage. `tenant`: the whole tenant, by user (admins).",
        ),
    ] = "user",
) -> UsageOut:
    scope = scope_
    if scope not in SCOPES:
        raise InvalidInput(
            "scope",
            f"scope must be `user` (your own usage) or `tenant` (the whole tenant, for "
            f"admins), not {scope!r}",
        )
    if scope == "tenant" and not caller.is_admin:
        raise PermissionDenied("only a tenant admin may see the whole tenant's usage")
    user_id = None if scope == "tenant" else caller.user_id
    async with async_unit_of_work(resources.engine, caller.tenant_id) as session:
        report = await usage_report(session, caller.tenant_id, user_id)
        quota = await quota_state(session, caller.tenant_id)
    return usage_out(scope, report, quota)


router = Router("/usage", tags=["usage"], route_handlers=[get_usage])
