"""Tenants and users: the queries the CLI and the auth routes share."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

from core.errors import Conflict, NotFound
from core.identity import normalise_email, validate_slug
from db.engine import async_unit_of_work
from db.models import Tenant, User


def create_tenant(session: Session, slug: str, name: str) -> Tenant:
    validate_slug(slug)
    tenant = Tenant(slug=slug, name=name.strip() or slug)
    try:
        with session.begin_nested():
            session.add(tenant)
            session.flush()
    except IntegrityError:
        raise Conflict(f"a tenant with slug {slug!r} already exists") from None
    return tenant


def ensure_tenant(session: Session, slug: str, name: str) -> Tenant:
    """The tenant with this slug, created if missing (the dev stack's `demo`)."""
    existing = session.scalar(select(Tenant).where(Tenant.slug == slug))
    return existing or create_tenant(session, slug, name)


def tenant_lookup(key: str) -> ColumnElement[bool]:
    """The WHERE clause finding a tenant by its id or its slug, as the tenant header allows."""
    try:
        return Tenant.id == uuid.UUID(key)
    except ValueError:
        return Tenant.slug == key.strip().lower()


def find_tenant(session: Session, key: str) -> Tenant:
    tenant = session.scalar(select(Tenant).where(tenant_lookup(key)))
    if tenant is None:
        raise NotFound(f"no tenant {key!r}")
    return tenant


def get_or_create_user(session: Session, tenant: Tenant, email: str) -> User:
    address = normalise_email(email)
    query = select(User).where(User.tenant_id == tenant.id, User.email == address)
    user = session.scalar(query)
    if user is not None:
        return user
    try:
        with session.begin_nested():
            user = User(tenant_id=tenant.id, email=address)
            session.add(user)
            session.flush()
    except IntegrityError:  # created concurrently by another request
        user = session.scalars(query).one()
    return user


async def get_or_create_user_async(
    engine: AsyncEngine, tenant: Tenant, email: str, signed_in_at: datetime
) -> User:
    """The user of `tenant` with this address, created on first sign-in; records the sign-in."""
    address = normalise_email(email)
    statement = (
        insert(User)
        .values(tenant_id=tenant.id, email=address, last_login_at=signed_in_at)
        .on_conflict_do_update(
            index_elements=[User.tenant_id, User.email], set_={"last_login_at": signed_in_at}
        )
        .returning(User)
    )
    async with async_unit_of_work(engine, tenant.id) as session:
        return (await session.scalars(statement)).one()


def promote_user(session: Session, tenant: Tenant, email: str) -> User:
    """Make the user (created if needed) an admin of its tenant."""
    user = get_or_create_user(session, tenant, email)
    user.role = "admin"
    session.flush()
    return user
