"""Who belongs to a tenant, and the changes admins and operators make: tenants and their
sign-up policy, signing in, invitations, roles, removal.

Each function works in the caller's transaction (a sync Session: the CLI's own, or the API's
through `AsyncSession.run_sync`), which the caller commits. Changes that could leave a tenant
without an admin first lock the tenant's row, so two admins demoting each other at once
cannot both win.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from core.errors import Conflict, InvalidInput
from db import accounts, members
from db.members import Member
from db.models import Tenant, User
from usecases.identity import normalise_email, validate_slug
from usecases.membership import MEMBER_STATUSES, SIGNUP_POLICIES, may_sign_in, normalise_domains

# --- tenants (operators) --------------------------------------------------------------------


def create_tenant(
    session: Session,
    slug: str,
    name: str,
    *,
    signup_policy: str = "invite",
    allowed_domains: Sequence[str] = (),
) -> Tenant:
    """A new tenant; invite-only unless told otherwise."""
    return accounts.insert_tenant(
        session,
        validate_slug(slug),
        name.strip() or slug,
        _policy(signup_policy),
        normalise_domains(allowed_domains),
    )


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
    existing = accounts.tenant_by_slug(session, slug)
    return existing or create_tenant(session, slug, name, signup_policy=signup_policy)


def _policy(value: str) -> str:
    if value not in SIGNUP_POLICIES:
        raise InvalidInput("signup", f"{value!r} is not a sign-up policy: use invite or open")
    return value


def get_or_create_user(session: Session, tenant: Tenant, email: str) -> User:
    """The tenant's user with this address, made an active member if there is none: an
    operator vouches for them. A removed member stays removed (invite them again)."""
    address = normalise_email(email)
    user = members.user_by_email(session, tenant.id, address)
    if user is None:
        return members.add_user(session, tenant.id, address, "active")
    if user.status == "removed":
        raise Conflict(
            f"{address} was removed from {tenant.slug}; invite them again with "
            f"`docuchat user invite {tenant.slug} {address}`"
        )
    return user


def promote_user(session: Session, tenant: Tenant, email: str) -> User:
    """Make the user (created if needed) an admin of its tenant."""
    user = get_or_create_user(session, tenant, email)
    user.role = "admin"
    session.flush()
    return user


# --- signing in -----------------------------------------------------------------------------


def may_request_code(session: Session, tenant: Tenant, email: str) -> bool:
    """Whether a code mailed to this (normalised) address could sign it in."""
    user = members.user_by_email(session, tenant.id, email)
    status = user.status if user is not None else None
    return may_sign_in(tenant.signup_policy, tenant.allowed_domains, email, status)


def sign_in(session: Session, tenant: Tenant, email: str, at: datetime) -> User | None:
    """The member signing in, now active with the sign-in recorded; made a member when the
    tenant lets this address sign up. None when the address may not sign in."""
    user = members.user_by_email(session, tenant.id, email, lock=True)
    status = user.status if user is not None else None
    if not may_sign_in(tenant.signup_policy, tenant.allowed_domains, email, status):
        return None
    if user is None:
        return members.add_signed_in_user(session, tenant.id, email, at)
    user.status, user.last_login_at = "active", at
    session.flush()
    return user


# --- what admins do -------------------------------------------------------------------------


@dataclass(frozen=True)
class Invitation:
    member: Member
    created: bool  # False: an invitation that was still open, sent again


def invite(
    session: Session, tenant_id: uuid.UUID, email: str, role: str, invited_by: uuid.UUID | None
) -> Invitation:
    """Invite a (normalised) address with a role. An open invitation is renewed; a removed
    member is invited afresh; an active member is a conflict."""
    accounts.lock_tenant(session, tenant_id)
    user = members.user_by_email(session, tenant_id, email, lock=True)
    if user is not None and user.status == "active":
        raise Conflict(f"{email} is already a member")
    created = user is None or user.status == "removed"
    if user is None:
        user = members.add_user(session, tenant_id, email, "invited")
    user.status, user.role, user.invited_by = "invited", role, invited_by
    session.flush()
    return Invitation(members.get_member(session, tenant_id, user.id), created)


def change_role(session: Session, tenant_id: uuid.UUID, member_id: uuid.UUID, role: str) -> Member:
    accounts.lock_tenant(session, tenant_id)
    user = members.locked_user(session, tenant_id, member_id)
    if user.status not in MEMBER_STATUSES:
        raise Conflict(f"{user.email} was removed; invite them again first")
    if user.role == "admin" and role != "admin":
        _keep_an_admin(session, user, "demote")
    user.role = role
    session.flush()
    return members.get_member(session, tenant_id, member_id)


def remove(
    session: Session, tenant_id: uuid.UUID, member_id: uuid.UUID, *, keep_an_admin: bool
) -> User:
    """Remove a member: their tokens stop working (their token version goes up), their
    documents stay. Removing one who is already removed changes nothing."""
    accounts.lock_tenant(session, tenant_id)
    user = members.locked_user(session, tenant_id, member_id)
    if user.status == "removed":
        return user
    if keep_an_admin and user.role == "admin":
        _keep_an_admin(session, user, "remove")
    user.status = "removed"
    user.token_version = User.token_version + 1
    session.flush()
    return user


def _keep_an_admin(session: Session, user: User, action: str) -> None:
    """An invited admin who has not signed in yet is not one the tenant can rely on."""
    if user.status == "active" and not members.other_active_admins(
        session, user.tenant_id, user.id
    ):
        raise Conflict(
            f"cannot {action} {user.email}: they are the tenant's last admin; make another "
            "member an admin first"
        )
