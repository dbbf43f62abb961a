"""Who belongs to a tenant: its sign-up policy, its allowed domains, and each member's state.

A member is `invited` (not signed in yet), `active`, or `removed`. Only an invited or active
member may sign in, except that a tenant whose policy is `open`, or an address of one of its
allowed domains, may sign up by signing in. A removed member stays out whatever the policy,
until an admin invites them again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from email_validator import EmailNotValidError, validate_email

from core.errors import InvalidInput

SignupPolicy = Literal["invite", "open"]
SIGNUP_POLICIES: tuple[SignupPolicy, ...] = ("invite", "open")
Role = Literal["member", "admin"]
ROLES: tuple[Role, ...] = ("member", "admin")
MemberStatus = Literal["invited", "active", "removed"]
# The states of someone who belongs: listed by default, allowed to sign in.
MEMBER_STATUSES: tuple[MemberStatus, ...] = ("invited", "active")


def domain_of(email: str) -> str:
    """The domain of a normalised address."""
    return email.rpartition("@")[2]


def normalise_domain(raw: str) -> str:
    """An allowed domain in the form a normalised address ends with (lower case, Unicode)."""
    candidate = raw.strip().lstrip("@")
    try:
        checked = validate_email(f"x@{candidate}", check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput("domain", f"{raw!r} is not a mail domain: {exc}") from None
    return domain_of(checked.normalized.lower())


def normalise_domains(raw: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(normalise_domain(domain) for domain in raw))


def may_sign_in(
    policy: str, allowed_domains: Iterable[str], email: str, status: str | None
) -> bool:
    """Whether `email` (normalised), whose member state is `status` (None: never a member),
    may sign in to a tenant with this policy and these domains."""
    if status is not None:
        return status in MEMBER_STATUSES
    return policy == "open" or domain_of(email) in set(allowed_domains)
