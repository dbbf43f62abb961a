"""Tenants and the operators' side of users: the queries the CLI and the tests share.

Members as the API sees them (sign-in, invitations, roles, removal) are in `db.members`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import ColumnElement, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import Conflict, InvalidInput, NotFound
from core.identity import normalise_email, validate_slug
from core.membership import SIGNUP_POLICIES, normalise_domains
from db.models import Tenant, User


def create_tenant(
    session: Session,
    slug: str,
    name: str,
    *,
    signup_policy: str = "invite",
    allowed_domains: Sequence[str] = (),
) -> Tenant:
    """A new tenant; invite-only unless told otherwise."""
    validate_slug(slug)
    tenant = Tenant(
        slug=slug,
        name=name.strip() or slug,
        signup_policy=_policy(signup_policy),
        allowed_domains=normalise_domains(allowed_domains),
    )
    try:
        with session.begin_nested():
            session.add(tenant)
            session.flush()
    except IntegrityError:
        raise Conflict(f"a tenant with slug {slug!r} already exists") from None
    return tenant


def _policy(value: str) -> str:
    if value not in SIGNUP_POLICIES:
        raise InvalidInput("signup", f"{value!r} is not a sign-up policy: use invite or open")
    return value


def update_tenant(
    session: Session,
    tenant: Tenant,
    *,
    name: str | None = None,
    signup_policy: str | None = None,
    allowed_domains: Sequence[str] | None = None,
) -> Tenant:
    """Change what is given; `allowed_domains` replaces the list (empty: none)."""
    if name is not None:
        tenant.name = name.strip() or tenant.slug
    if signup_policy is not None:
        tenant.signup_policy = _policy(signup_policy)
    if allowed_domains is not None:
        tenant.allowed_domains = normalise_domains(allowed_domains)
    session.flush()
    return tenant


def ensure_tenant(session: Session, slug: str, name: str, signup_policy: str) -> Tenant:
    """The tenant with this slug, created with this policy if missing (the dev stack's
    `demo`); an existing one is left as its operator set it."""
    existing = session.scalar(select(Tenant).where(Tenant.slug == slug))
    return existing or create_tenant(session, slug, name, signup_policy=signup_policy)


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
    """The tenant's user with this address, made an active member if there is none: an
    operator vouches for them. A removed member stays removed (invite them again)."""
    address = normalise_email(email)
    query = select(User).where(User.tenant_id == tenant.id, User.email == address)
    user = session.scalar(query)
    if user is not None:
        if user.status == "removed":
            raise Conflict(
                f"{address} was removed from {tenant.slug}; invite them again with "
                f"`docuchat user invite {tenant.slug} {address}`"
            )
        return user
    try:
        with session.begin_nested():
            user = User(tenant_id=tenant.id, email=address, status="active")
            session.add(user)
            session.flush()
    except IntegrityError:  # created concurrently by another request
        user = session.scalars(query).one()
    return user


def promote_user(session: Session, tenant: Tenant, email: str) -> User:
    """Make the user (created if needed) an admin of its tenant."""
    user = get_or_create_user(session, tenant, email)
    user.role = "admin"
    session.flush()
    return user
