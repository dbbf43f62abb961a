"""Sign-in by e-mailed code, and `GET /v1/me`."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import msgspec
from limits import RateLimitItemPerHour, RateLimitItemPerSecond
from litestar import Request, get, post
from litestar.background_tasks import BackgroundTask
from litestar.params import JSONBody
from litestar.response import Response

from api.identity import PUBLIC, Caller, find_active_tenant, tenant_header
from api.rate_limiting import client_ip
from api.resources import ApiResources, resources_of
from core.errors import InvalidInput, PermissionDenied, RateLimited
from core.identity import normalise_email
from core.tokens import issue_access_token
from db.accounts import get_or_create_user_async

log = logging.getLogger("docuchat.api")


class CodeRequest(msgspec.Struct):
    email: str


class CodeRequested(msgspec.Struct):
    detail: str
    expires_in: int


class CodeVerification(msgspec.Struct):
    email: str
    code: str


class AccessToken(msgspec.Struct):
    access_token: str
    expires_in: int
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret


class TenantOut(msgspec.Struct):
    id: str
    slug: str


class Me(msgspec.Struct):
    user_id: str
    email: str
    role: str
    tenant: TenantOut


async def _send_code(resources: ApiResources, to: str, code: str, tenant: str) -> None:
    try:
        minutes = max(1, resources.settings.login_code_ttl_seconds // 60)
        await resources.mailer.send_signin_code(to, code, tenant, minutes)
    except Exception:
        log.exception("could not send a sign-in code e-mail")


@post(
    "/v1/auth/request-code",
    status_code=202,
    opt={PUBLIC: True},
    tags=["auth"],
    summary="E-mail a 6-digit sign-in code",
)
async def request_code(
    request: Request[Any, Any, Any], data: JSONBody[CodeRequest]
) -> Response[CodeRequested]:
    resources = resources_of(request)
    settings = resources.settings
    tenant = await find_active_tenant(resources, tenant_header(request, resources))
    email = normalise_email(data.email)
    ip = client_ip(request.scope, resources.trusted_proxies)
    per_address = RateLimitItemPerSecond(1, settings.login_code_interval_seconds)
    per_hour = RateLimitItemPerHour(settings.login_codes_per_hour)
    for item, identity in (
        (per_address, (str(tenant.id), email)),
        (per_hour, (str(tenant.id), email, ip)),
    ):
        decision = await resources.rate_limiter.hit(item, "signin", *identity)
        if not decision.allowed:
            raise RateLimited(
                f"a code was requested for this address too recently; retry in "
                f"{decision.reset_after} s",
                decision.reset_after,
            )
    code = await resources.signin_codes.issue(tenant.id, email)
    # Mail goes out after the answer, so its timing says nothing about the address.
    return Response(
        CodeRequested(
            detail="If the address can receive mail, a sign-in code is on its way.",
            expires_in=settings.login_code_ttl_seconds,
        ),
        status_code=202,
        background=BackgroundTask(_send_code, resources, email, code, tenant.name),
    )


@post(
    "/v1/auth/verify-code",
    status_code=200,
    opt={PUBLIC: True},
    tags=["auth"],
    summary="Exchange a sign-in code for a 7-day access token",
)
async def verify_code(
    request: Request[Any, Any, Any], data: JSONBody[CodeVerification]
) -> AccessToken:
    resources = resources_of(request)
    tenant = await find_active_tenant(resources, tenant_header(request, resources))
    email = normalise_email(data.email)
    code = data.code.strip()
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        raise InvalidInput("code", "the code is the 6 digits from the e-mail")
    await resources.signin_codes.redeem(tenant.id, email, code)
    user = await get_or_create_user_async(resources.engine, tenant, email, datetime.now(UTC))
    if not user.active:
        raise PermissionDenied("this account is disabled")
    issued = issue_access_token(resources.settings, user.id, tenant.id)
    return AccessToken(access_token=issued.token, expires_in=issued.expires_in)


@get("/v1/me", tags=["auth"], summary="The signed-in user")
async def me(request: Request[Caller, Any, Any]) -> Me:
    caller = request.user
    return Me(
        user_id=str(caller.user_id),
        email=caller.email,
        role=caller.role,
        tenant=TenantOut(id=str(caller.tenant_id), slug=caller.tenant_slug),
    )
