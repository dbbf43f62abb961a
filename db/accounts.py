"""Tenants: the queries behind the operators' commands, sign-in and membership changes."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import Conflict, NotFound
from db.models import Document, Tenant, User


def insert_tenant(
    session: Session, slug: str, name: str, signup_policy: str, allowed_domains: Sequence[str]
) -> Tenant:
    tenant = Tenant(
        slug=slug, name=name, signup_policy=signup_policy, allowed_domains=list(allowed_domains)
    )
    try:
        with session.begin_nested():
            session.add(tenant)
            session.flush()
    except IntegrityError:
        raise Conflict(f"a tenant with slug {slug!r} already exists") from None
    return tenant


def tenant_by_slug(session: Session, slug: str) -> Tenant | None:
    return session.scalar(select(Tenant).where(Tenant.slug == slug))


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


@dataclass(frozen=True)
class TenantSummary:
    slug: str
    name: str
    signup_policy: str
    active: bool
    members: int  # not removed
    documents: int


def tenant_overview(session: Session) -> list[TenantSummary]:
    """Every tenant with its member and document counts, by slug (for the owner's eyes)."""
    members = (
        select(func.count())
        .select_from(User)
        .where(User.tenant_id == Tenant.id, User.status != "removed")
        .scalar_subquery()
    )
    documents = (
        select(func.count()).select_from(Document).where(Document.tenant_id == Tenant.id)
    ).scalar_subquery()
    rows = session.execute(
        select(
            Tenant.slug, Tenant.name, Tenant.signup_policy, Tenant.active, members, documents
        ).order_by(Tenant.slug)
    )
    return [TenantSummary(*row) for row in rows]


def lock_tenant(session: Session, tenant_id: uuid.UUID) -> None:
    """Serialise changes of one tenant's membership until the transaction ends (NO KEY
    UPDATE: inserts of rows that reference the tenant go on meanwhile)."""
    session.execute(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update(key_share=True))
