"""A tenant's members: signing in, invitations, roles and removal.

Every function works inside the caller's transaction and names its tenant in every query
(the API's transactions are also held to it by row-level security; the operators' CLI works
as the owner, without). Nothing here commits. The functions are synchronous so the CLI and
the API (through `AsyncSession.run_sync`) share them. Changes that could leave a tenant
without an admin first lock the tenant's row, so two admins demoting each other at once
cannot both win.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, aliased

from core.errors import Conflict, NotFound
from core.membership import MEMBER_STATUSES, may_sign_in
from db.models import Tenant, User
from db.paging import decode_cursor, page_of


@dataclass(frozen=True)
class Member:
    user: User
    inviter_email: str | None


# --- signing in -----------------------------------------------------------------------------


def member_status(session: Session, tenant: Tenant, email: str) -> str | None:
    """The state of this (normalised) address in the tenant; None if it was never a member."""
    status: str | None = session.scalar(
        select(User.status).where(User.tenant_id == tenant.id, User.email == email)
    )
    return status


def sign_in_member(session: Session, tenant: Tenant, email: str, at: datetime) -> User | None:
    """The member signing in, now active with the sign-in recorded; made a member when the
    tenant lets this address sign up. None when the address may not sign in."""
    user = session.scalar(
        select(User).where(User.tenant_id == tenant.id, User.email == email).with_for_update()
    )
    status = user.status if user is not None else None
    if not may_sign_in(tenant.signup_policy, tenant.allowed_domains, email, status):
        return None
    if user is not None:
        user.status, user.last_login_at = "active", at
        session.flush()
        return user
    # Two first sign-ins of one address at once: the second finds the first's row.
    statement = (
        insert(User)
        .values(tenant_id=tenant.id, email=email, status="active", last_login_at=at)
        .on_conflict_do_update(
            index_elements=[User.tenant_id, User.email],
            set_={"last_login_at": at},
            where=User.status != "removed",
        )
        .returning(User)
    )
    return session.scalars(statement).one_or_none()


# --- what admins do -------------------------------------------------------------------------


def list_members(
    session: Session,
    tenant_id: uuid.UUID,
    statuses: tuple[str, ...],
    limit: int,
    cursor: str | None,
) -> tuple[list[Member], str | None]:
    """A page of the tenant's members in these states, newest first."""
    inviter = aliased(User)
    query = (
        select(User, inviter.email)
        .outerjoin(inviter, inviter.id == User.invited_by)
        .where(User.tenant_id == tenant_id, User.status.in_(statuses))
        .order_by(User.created_at.desc(), User.id.desc())
    )
    if cursor:
        at, ident = decode_cursor(cursor)
        query = query.where(tuple_(User.created_at, User.id) < tuple_(at, ident))
    rows = session.execute(query.limit(limit + 1)).all()
    members = [Member(user, email) for user, email in rows]
    return page_of(members, limit, lambda member: (member.user.created_at, member.user.id))


def get_member(session: Session, tenant_id: uuid.UUID, member_id: uuid.UUID) -> Member:
    inviter = aliased(User)
    row = session.execute(
        select(User, inviter.email)
        .outerjoin(inviter, inviter.id == User.invited_by)
        .where(User.tenant_id == tenant_id, User.id == member_id)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no member {member_id}")
    return Member(*row)


@dataclass(frozen=True)
class Invitation:
    member: Member
    created: bool  # False: an invitation that was still open, sent again


def invite_member(
    session: Session,
    tenant_id: uuid.UUID,
    email: str,
    role: str,
    invited_by: uuid.UUID | None,
) -> Invitation:
    """Invite a (normalised) address with a role. An open invitation is renewed; a removed
    member is invited afresh; an active member is a conflict."""
    _lock_membership(session, tenant_id)
    user = session.scalar(
        select(User).where(User.tenant_id == tenant_id, User.email == email).with_for_update()
    )
    if user is not None and user.status == "active":
        raise Conflict(f"{email} is already a member")
    created = user is None or user.status == "removed"
    if user is None:
        user = User(tenant_id=tenant_id, email=email)
        session.add(user)
    user.status, user.role, user.invited_by = "invited", role, invited_by
    session.flush()
    return Invitation(get_member(session, tenant_id, user.id), created)


def change_role(session: Session, tenant_id: uuid.UUID, member_id: uuid.UUID, role: str) -> Member:
    _lock_membership(session, tenant_id)
    user = _current_member(session, tenant_id, member_id)
    if user.role == "admin" and role != "admin":
        _keep_an_admin(session, user, "demote")
    user.role = role
    session.flush()
    return get_member(session, tenant_id, member_id)


def remove_member(
    session: Session, tenant_id: uuid.UUID, member_id: uuid.UUID, *, keep_an_admin: bool
) -> User:
    """Remove a member: their tokens stop working, their documents stay. Removing one who
    is already removed changes nothing."""
    _lock_membership(session, tenant_id)
    user = _locked_user(session, tenant_id, member_id)
    if user.status == "removed":
        return user
    if keep_an_admin and user.role == "admin":
        _keep_an_admin(session, user, "remove")
    user.status = "removed"
    user.token_version = User.token_version + 1
    session.flush()
    return user


def _lock_membership(session: Session, tenant_id: uuid.UUID) -> None:
    """Serialise changes of one tenant's membership (NO KEY UPDATE: inserts that reference
    the tenant go on)."""
    session.execute(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update(key_share=True))


def _locked_user(session: Session, tenant_id: uuid.UUID, member_id: uuid.UUID) -> User:
    user = session.scalar(
        select(User)
        .where(User.tenant_id == tenant_id, User.id == member_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if user is None:
        raise NotFound(f"no member {member_id}")
    return user


def _current_member(session: Session, tenant_id: uuid.UUID, member_id: uuid.UUID) -> User:
    user = _locked_user(session, tenant_id, member_id)
    if user.status not in MEMBER_STATUSES:
        raise Conflict(f"{user.email} was removed; invite them again first")
    return user


def _keep_an_admin(session: Session, user: User, action: str) -> None:
    if user.status != "active":
        return  # an invited admin is not one of the admins the tenant relies on yet
    others = session.scalar(
        select(func.count())
        .select_from(User)
        .where(
            User.tenant_id == user.tenant_id,
            User.role == "admin",
            User.status == "active",
            User.id != user.id,
        )
    )
    if not others:
        raise Conflict(
            f"cannot {action} {user.email}: they are the tenant's last admin; make another "
            "member an admin first"
        )


# --- what operators do ----------------------------------------------------------------------


def operator_members(session: Session, tenant: Tenant) -> list[User]:
    """Every member of the tenant, removed ones too, oldest first (`docuchat user list`)."""
    return list(
        session.scalars(
            select(User).where(User.tenant_id == tenant.id).order_by(User.created_at, User.id)
        )
    )
