"""Sign-in by e-mailed code, and `GET /v1/me`."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Router, get, post
from litestar.background_tasks import BackgroundTask
from litestar.params import JSONBody
from litestar.response import Response

from api.identity import PUBLIC, CallerDep, find_active_tenant, tenant_header
from api.openapi import problem_responses
from api.rate_limiting import client_ip
from api.resources import ResourcesDep
from api.signin.tokens import issue_access_token
from usecases import signin
from usecases.identity import normalise_email
from usecases.mail import deliver


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


@post(
    "/auth/request-code",
    status_code=202,
    opt={PUBLIC: True},
    summary="E-mail a 6-digit sign-in code",
    description=(
        "The answer is the same for every address. A member (or, where the tenant lets "
        "people sign up, anyone it admits) is mailed a code; any other address is mailed a "
        "note to ask the tenant's admins for an invitation, and no code."
    ),
)
async def request_code(
    request: Request[Any, Any, Any], resources: ResourcesDep, data: JSONBody[CodeRequest]
) -> Response[CodeRequested]:
    tenant = await find_active_tenant(resources, tenant_header(request, resources))
    ip = client_ip(request.scope, resources.trusted_proxies)
    mail = await signin.request_code(resources, tenant, normalise_email(data.email), ip)
    # Mail goes out after the answer, so its timing says nothing about the address.
    return Response(
        CodeRequested(
            detail="If the address can receive mail, a sign-in code is on its way.",
            expires_in=resources.settings.login_code_ttl_seconds,
        ),
        status_code=202,
        background=BackgroundTask(deliver, resources.mailer, mail),
    )


@post(
    "/auth/verify-code",
    status_code=200,
    opt={PUBLIC: True},
    summary="Exchange a sign-in code for a 7-day access token",
    description="403 when the address may not sign in to the tenant (not a member).",
    responses=problem_responses(403),
)
async def verify_code(
    request: Request[Any, Any, Any], resources: ResourcesDep, data: JSONBody[CodeVerification]
) -> AccessToken:
    tenant = await find_active_tenant(resources, tenant_header(request, resources))
    user = await signin.verify_code(resources, tenant, normalise_email(data.email), data.code)
    issued = issue_access_token(resources.settings, user.id, tenant.id, user.token_version)
    return AccessToken(access_token=issued.token, expires_in=issued.expires_in)


@get("/me", summary="The signed-in user")
async def me(caller: CallerDep) -> Me:
    return Me(
        user_id=str(caller.user_id),
        email=caller.email,
        role=caller.role,
        tenant=TenantOut(id=str(caller.tenant_id), slug=caller.tenant_slug),
    )


router = Router("/", tags=["auth"], route_handlers=[request_code, verify_code, me])
