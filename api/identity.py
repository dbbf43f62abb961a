"""Who is asking: bearer tokens checked against the tenant header on every non-public route."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, TypeAlias

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from sqlalchemy import select

from api.resources import ApiResources, resources_of
from api.signin.tokens import InvalidToken, decode_access_token
from core import logs
from core.errors import AuthenticationFailed, InvalidInput, NotFound, PermissionDenied
from db.accounts import tenant_lookup
from db.engine import async_unit_of_work
from db.models import Tenant, User
from usecases.membership import MEMBER_STATUSES

PUBLIC = "public"  # route opt key: no token needed


@dataclass(frozen=True)
class Caller:
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    tenant_slug: str
    email: str
    role: str
    token_version: int = 0

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def parse_bearer(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value, or None."""
    scheme, _, token = authorization.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def tenant_header(connection: ASGIConnection[Any, Any, Any, Any], resources: ApiResources) -> str:
    name = resources.settings.tenant_header
    value = connection.headers.get(name, "").strip()
    if not value:
        raise InvalidInput(name, f"the {name} header naming your tenant is required")
    return value


async def find_active_tenant(resources: ApiResources, key: str) -> Tenant:
    async with async_unit_of_work(resources.engine) as session:
        tenant = await session.scalar(select(Tenant).where(tenant_lookup(key)))
    if tenant is None or not tenant.active:
        raise NotFound(f"no active tenant {key!r}")
    return tenant


async def caller_of(
    resources: ApiResources,
    user_id: uuid.UUID,
    tenant_id: uuid.UUID,
    requested: str | None,
    token_version: int,
) -> Caller:
    """The member behind a token; `requested` is the tenant header, when there is one.

    Checked on every request, so a removed member's tokens stop working at once."""
    async with async_unit_of_work(resources.engine, tenant_id) as session:
        row = (
            await session.execute(
                select(User, Tenant)
                .join(Tenant, Tenant.id == User.tenant_id)
                .where(User.id == user_id, User.tenant_id == tenant_id)
            )
        ).one_or_none()
    if row is None:
        raise AuthenticationFailed("the account behind this token no longer exists")
    user, tenant = row
    if requested is not None and requested.lower() not in (tenant.slug, str(tenant.id)):
        raise PermissionDenied(
            f"this token belongs to another tenant than {requested!r} in the "
            f"{resources.settings.tenant_header} header"
        )
    if not tenant.active:
        raise PermissionDenied(f"the tenant {tenant.slug!r} is disabled")
    if user.status not in MEMBER_STATUSES:
        raise PermissionDenied(
            f"{user.email} is no longer a member of {tenant.slug!r}; ask one of its admins "
            "for an invitation"
        )
    if token_version != user.token_version:
        raise AuthenticationFailed(
            "this token was revoked when the account was removed; sign in again"
        )
    logs.tenant_id.set(str(tenant.id))  # for the log lines of the rest of the request
    return Caller(user.id, tenant.id, tenant.slug, user.email, user.role, user.token_version)


async def bearer_caller(connection: ASGIConnection[Any, Any, Any, Any]) -> Caller:
    """The caller named by the `Authorization: Bearer` access token and the tenant header."""
    resources = resources_of(connection)
    token = parse_bearer(connection.headers.get("authorization", ""))
    if token is None:
        raise AuthenticationFailed("an `Authorization: Bearer <token>` header is required")
    try:
        claims = decode_access_token(resources.settings, token)
    except InvalidToken as exc:
        raise AuthenticationFailed(str(exc)) from None
    requested = tenant_header(connection, resources)
    return await caller_of(resources, claims.user_id, claims.tenant_id, requested, claims.version)


class BearerAuthentication(AbstractAuthenticationMiddleware):
    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        return AuthenticationResult(user=await bearer_caller(connection), auth=None)


# How a handler asks for who calls: `caller: CallerDep` (provided in app.py).
CallerDep: TypeAlias = NamedDependency[Caller]


def provide_caller(request: Request[Caller, Any, Any]) -> Caller:
    """The `caller` dependency: who the bearer token names, as authentication found them."""
    return request.user
