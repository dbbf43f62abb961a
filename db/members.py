"""A tenant's members (the `users` table): the queries behind sign-in and membership changes.

Every query names its tenant (the API's transactions are also held to it by row-level
security; the operators' commands work as the owner, without). The rules these serve are in
`usecases.members`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from core.errors import NotFound
from db.models import User
from db.paging import decode_cursor, page_of


@dataclass(frozen=True)
class Member:
    user: User
    inviter_email: str | None


def user_by_email(
    session: Session, tenant_id: uuid.UUID, email: str, *, lock: bool = False
) -> User | None:
    query = select(User).where(User.tenant_id == tenant_id, User.email == email)
    return session.scalar(query.with_for_update() if lock else query)


def locked_user(session: Session, tenant_id: uuid.UUID, member_id: uuid.UUID) -> User:
    user = session.scalar(
        select(User)
        .where(User.tenant_id == tenant_id, User.id == member_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if user is None:
        raise NotFound(f"no member {member_id}")
    return user


def add_user(session: Session, tenant_id: uuid.UUID, email: str, status: str) -> User:
    """A new user row, or the one a concurrent request made for the same address."""
    try:
        with session.begin_nested():
            user = User(tenant_id=tenant_id, email=email, status=status)
            session.add(user)
            session.flush()
    except IntegrityError:
        found = user_by_email(session, tenant_id, email)
        assert found is not None
        return found
    return user


def add_signed_in_user(
    session: Session, tenant_id: uuid.UUID, email: str, at: datetime
) -> User | None:
    """A member made by signing in; when two first sign-ins of one address race, the second
    finds the first's row. None if the address was removed meanwhile."""
    statement = (
        insert(User)
        .values(tenant_id=tenant_id, email=email, status="active", last_login_at=at)
        .on_conflict_do_update(
            index_elements=[User.tenant_id, User.email],
            set_={"last_login_at": at},
            where=User.status != "removed",
        )
        .returning(User)
    )
    return session.scalars(statement).one_or_none()


def other_active_admins(session: Session, tenant_id: uuid.UUID, user_id: uuid.UUID) -> int:
    count = session.scalar(
        select(func.count())
        .select_from(User)
        .where(
            User.tenant_id == tenant_id,
            User.role == "admin",
            User.status == "active",
            User.id != user_id,
        )
    )
    return int(count or 0)


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


def all_members(session: Session, tenant_id: uuid.UUID) -> list[User]:
    """Every member of the tenant, removed ones too, oldest first."""
    return list(
        session.scalars(
            select(User).where(User.tenant_id == tenant_id).order_by(User.created_at, User.id)
        )
    )
