"""A tenant's members, managed by its admins: `GET/POST /v1/members`,
`PATCH/DELETE /v1/members/{id}`. Members get 403 on all of them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from litestar import Response, Router, delete, get, patch, post
from litestar.background_tasks import BackgroundTask
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, JSONBody, Parameter, QueryParameter

from api.identity import Caller, CallerDep
from api.openapi import problem_responses
from api.params import parse_id, text_field
from api.resources import ResourcesDep
from core.errors import PermissionDenied
from db.engine import async_unit_of_work
from db.members import Member, list_members
from db.models import Tenant
from usecases.identity import normalise_email
from usecases.mail import deliver, invitation_mail
from usecases.members import change_role, invite, remove
from usecases.membership import MEMBER_STATUSES

Role = Literal["member", "admin"]
STATUS_FILTERS = {"invited": ("invited",), "active": ("active",), "removed": ("removed",)}


class Inviter(msgspec.Struct):
    id: str
    email: str | None


class MemberOut(msgspec.Struct):
    id: str
    email: str
    role: str  # member | admin
    status: str  # invited | active | removed
    invited_by: Inviter | None
    created_at: datetime
    last_sign_in: datetime | None


class MemberPage(msgspec.Struct):
    items: list[MemberOut]
    next_cursor: str | None


class NewMember(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(min_length=1, max_length=320)]
    role: Role = "member"


class RoleChange(msgspec.Struct, forbid_unknown_fields=True):
    role: Role


def member_out(member: Member) -> MemberOut:
    user = member.user
    return MemberOut(
        id=str(user.id),
        email=user.email,
        role=user.role,
        status=user.status,
        invited_by=(
            Inviter(str(user.invited_by), member.inviter_email) if user.invited_by else None
        ),
        created_at=user.created_at,
        last_sign_in=user.last_login_at,
    )


def require_admin(caller: Caller) -> None:
    """Checked in each handler, not as a router guard: guards run before the request is
    validated, and a malformed request is a 400 whoever sends it."""
    if not caller.is_admin:
        raise PermissionDenied("only an admin of the tenant may manage its members")


@get("/", summary="The tenant's members, newest first (admins)")
async def list_tenant_members(
    resources: ResourcesDep,
    caller: CallerDep,
    limit: int = Parameter(default=20, ge=1, le=100),
    cursor: str | None = Parameter(default=None, max_length=200),
    status: Annotated[
        Literal["invited", "active", "removed"] | None,
        QueryParameter(description="only members in this state; default: invited and active"),
    ] = None,
) -> MemberPage:
    require_admin(caller)
    statuses = STATUS_FILTERS[status] if status else MEMBER_STATUSES
    async with async_unit_of_work(resources.engine, caller.tenant_id) as session:
        members, next_cursor = await session.run_sync(
            list_members, caller.tenant_id, statuses, limit, cursor
        )
    return MemberPage([member_out(member) for member in members], next_cursor)


@post(
    "/",
    status_code=201,
    summary="Invite someone by e-mail (admins); they sign in with the usual code",
    description=(
        "201 with the new member (status `invited`), and an invitation is mailed. An open "
        "invitation is renewed and mailed again (200); inviting an active member is 409. A "
        "removed member can be invited again."
    ),
    responses={
        200: ResponseSpec(MemberOut, description="an open invitation, renewed and sent again"),
        **problem_responses(409),
    },
)
async def invite_tenant_member(
    resources: ResourcesDep, caller: CallerDep, data: JSONBody[NewMember]
) -> Response[MemberOut]:
    require_admin(caller)
    email = normalise_email(text_field(data.email, "email"))
    async with async_unit_of_work(resources.engine, caller.tenant_id) as session:
        invitation = await session.run_sync(
            invite, caller.tenant_id, email, data.role, caller.user_id
        )
        tenant = await session.get_one(Tenant, caller.tenant_id)
    mail = invitation_mail(email, tenant.name, tenant.slug, caller.email)
    return Response(
        member_out(invitation.member),
        status_code=201 if invitation.created else 200,
        background=BackgroundTask(deliver, resources.mailer, mail),
    )


@patch(
    "/{member_id:str}",
    summary="Change a member's role (admins); the last admin cannot be demoted",
    responses=problem_responses(409),
)
async def update_member(
    resources: ResourcesDep, caller: CallerDep, member_id: FromPath[str], data: JSONBody[RoleChange]
) -> MemberOut:
    require_admin(caller)
    ident = parse_id(member_id, "member")
    async with async_unit_of_work(resources.engine, caller.tenant_id) as session:
        member = await session.run_sync(change_role, caller.tenant_id, ident, data.role)
    return member_out(member)


@delete(
    "/{member_id:str}",
    status_code=204,
    summary="Remove a member (admins): their tokens stop working, their documents stay",
    responses=problem_responses(409),
)
async def remove_tenant_member(
    resources: ResourcesDep, caller: CallerDep, member_id: FromPath[str]
) -> None:
    require_admin(caller)
    ident = parse_id(member_id, "member")
    async with async_unit_of_work(resources.engine, caller.tenant_id) as session:
        await session.run_sync(remove, caller.tenant_id, ident, keep_an_admin=True)


router = Router(
    "/members",
    tags=["members"],
    route_handlers=[
        list_tenant_members,
        invite_tenant_member,
        update_member,
        remove_tenant_member,
    ],
)
