"""Tenants and users: the queries the CLI and the auth routes share."""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import Conflict, NotFound
from core.identity import normalise_email, validate_slug
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
