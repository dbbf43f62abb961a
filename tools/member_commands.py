"""The operators' commands for tenants, their members and their usage: `docuchat tenant`,
`docuchat user` and `docuchat usage`."""

from __future__ import annotations

import asyncio
from datetime import UTC
from pathlib import Path
from typing import Any, ClassVar

import click
import msgspec

from api.usage import usage_out
from bootstrap import bootstrap
from core.errors import NotFound
from db.accounts import find_tenant, tenant_overview
from db.engine import unit_of_work
from db.members import all_members, user_by_email
from db.models import Tenant
from db.usage import quota_state_of, quota_statement, set_quota, usage_report_of
from tools.admin_database import admin_database, data_dir_option, resolve_data_dir
from usecases.identity import normalise_email
from usecases.mail import deliver, invitation_mail
from usecases.members import (
    create_tenant,
    invite,
    promote_user,
    remove,
    update_tenant,
)
from usecases.membership import ROLES, SIGNUP_POLICIES


@click.group()
def tenant() -> None:
    """Manage tenants."""


signup_option = click.option(
    "--signup",
    type=click.Choice(SIGNUP_POLICIES),
    help="invite: only invited members sign in; open: any address signs up by signing in.",
)
domain_option = click.option(
    "--allow-domain",
    "domains",
    multiple=True,
    metavar="DOMAIN",
    help="Addresses of this domain sign up by themselves (repeatable).",
)


@tenant.command("create")
@click.argument("slug")
@click.option("--name", required=True, help="Display name of the tenant.")
@signup_option
@domain_option
@data_dir_option
def tenant_create(
    slug: str, name: str, signup: str | None, domains: tuple[str, ...], data_dir: Path | None
) -> None:
    """Create a tenant (invite-only unless --signup open) and print its id."""
    with admin_database(resolve_data_dir(data_dir)) as (_settings, engine):
        with unit_of_work(engine) as session:
            created = create_tenant(
                session, slug, name, signup_policy=signup or "invite", allowed_domains=domains
            )
        click.echo(str(created.id))


@tenant.command("update")
@click.argument("slug")
@click.option("--name", default=None, help="A new display name.")
@signup_option
@domain_option
@click.option("--no-allowed-domains", is_flag=True, help="Remove every allowed domain.")
@data_dir_option
def tenant_update(
    slug: str,
    name: str | None,
    signup: str | None,
    domains: tuple[str, ...],
    no_allowed_domains: bool,
    data_dir: Path | None,
) -> None:
    """Change tenant SLUG's name, sign-up policy or allowed domains (--allow-domain replaces
    the list); prints the result."""
    if domains and no_allowed_domains:
        raise click.UsageError("give --allow-domain or --no-allowed-domains, not both")
    with (
        admin_database(resolve_data_dir(data_dir)) as (_settings, engine),
        unit_of_work(engine) as session,
    ):
        found = update_tenant(
            session,
            find_tenant(session, slug),
            name=name,
            signup_policy=signup,
            allowed_domains=[] if no_allowed_domains else (list(domains) or None),
        )
        click.echo(_describe_tenant(found))


def _describe_tenant(found: Tenant) -> str:
    domains = ", ".join(found.allowed_domains) or "none"
    who = "anyone may sign up" if found.signup_policy == "open" else "invited members only"
    return (
        f"{found.slug} ({found.name}): sign-up {found.signup_policy} ({who}); "
        f"allowed domains: {domains}"
    )


class QuotaType(click.ParamType):
    """A monthly token quota: a whole number of tokens (1000000, 1_000_000, 2M), or `none`."""

    name = "tokens"
    SUFFIXES: ClassVar[dict[str, int]] = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}
    LARGEST = 10**15

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> int | None:
        text = str(value).strip().lower().replace("_", "").replace(",", "")
        if text in ("none", "unlimited"):
            return None
        scale = self.SUFFIXES.get(text[-1:], 1)
        digits = text[:-1] if scale > 1 else text
        if not digits.isdigit():
            self.fail(f"{value!r} is not a number of tokens (like 2000000 or 2M) or `none`")
        tokens = int(digits) * scale
        if tokens > self.LARGEST:
            self.fail(f"{value!r} is more than {self.LARGEST:,} tokens; use `none` for no quota")
        return tokens


@tenant.command("list")
@data_dir_option
def tenant_list(data_dir: Path | None) -> None:
    """List every tenant: slug, name, sign-up policy, members and documents."""
    with (
        admin_database(resolve_data_dir(data_dir)) as (_settings, engine),
        unit_of_work(engine) as session,
    ):
        tenants = tenant_overview(session)
    if not tenants:
        click.echo("no tenants yet; make one with `docuchat tenant create SLUG --name NAME`")
        return
    rows = [("SLUG", "NAME", "SIGN-UP", "MEMBERS", "DOCUMENTS", "STATE")] + [
        (
            t.slug,
            t.name,
            t.signup_policy,
            str(t.members),
            str(t.documents),
            "active" if t.active else "disabled",
        )
        for t in tenants
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@tenant.command("set-quota")
@click.argument("slug")
@click.argument("tokens", type=QuotaType())
@data_dir_option
def tenant_set_quota(slug: str, tokens: int | None, data_dir: Path | None) -> None:
    """Set tenant SLUG's monthly token quota (TOKENS, e.g. 2000000 or 2M; `none` removes it).

    Every token counts: answers (prompt and completion) and embeddings. The month starts at
    midnight UTC on the 1st. Once the tenant has used its quota, questions, searches and
    uploads get HTTP 429 until the month resets.
    """
    with (
        admin_database(resolve_data_dir(data_dir)) as (_settings, engine),
        unit_of_work(engine) as session,
    ):
        state = set_quota(session, find_tenant(session, slug), tokens)
    month = f"{state.period_start.astimezone(UTC):%B %Y}"
    resets = f"{state.resets_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    if state.monthly_tokens is None:
        click.echo(f"{slug}: no monthly quota ({state.used:,} tokens used in {month})")
        return
    click.echo(
        f"{slug}: {state.monthly_tokens:,} tokens a month; {state.used:,} used in {month}, "
        f"{state.remaining:,} left until {resets}"
        + (" (over quota: requests are refused now)" if state.exceeded else "")
    )


@click.group()
def user() -> None:
    """Manage a tenant's members."""


@user.command("invite")
@click.argument("slug")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), default="member", show_default=True)
@data_dir_option
def user_invite(slug: str, email: str, role: str, data_dir: Path | None) -> None:
    """Invite EMAIL to tenant SLUG and mail the invitation; they sign in with the usual code."""
    address = normalise_email(email)
    with admin_database(resolve_data_dir(data_dir)) as (settings, engine):
        with unit_of_work(engine) as session:
            found = find_tenant(session, slug)
            invitation = invite(session, found.id, address, role, None)
        mail = invitation_mail(address, found.name, slug, None)
        asyncio.run(deliver(bootstrap(settings).mailer, mail))
    again = "" if invitation.created else " again"
    click.echo(f"{address} is invited{again} to {slug} as {role}; the invitation was sent")


@user.command("remove")
@click.argument("slug")
@click.argument("email")
@data_dir_option
def user_remove(slug: str, email: str, data_dir: Path | None) -> None:
    """Remove EMAIL from tenant SLUG: their tokens stop working, their documents stay."""
    address = normalise_email(email)
    with admin_database(resolve_data_dir(data_dir)) as (_settings, engine):
        with unit_of_work(engine) as session:
            found = find_tenant(session, slug)
            member = user_by_email(session, found.id, address)
            if member is None:
                raise NotFound(f"{address} is not a member of {slug}")
            remove(session, found.id, member.id, keep_an_admin=False)
            admins = [
                u for u in all_members(session, found.id)
                if u.role == "admin" and u.status == "active"
            ]  # fmt: skip
        click.echo(f"{address} is removed from {slug}")
        if not admins:
            click.echo(
                f"note: {slug} has no active admin now; invite one with "
                f"`docuchat user invite {slug} EMAIL --role admin`",
                err=True,
            )


@user.command("list")
@click.argument("slug")
@data_dir_option
def user_list(slug: str, data_dir: Path | None) -> None:
    """List tenant SLUG's members, removed ones included, oldest first."""
    with (
        admin_database(resolve_data_dir(data_dir)) as (_settings, engine),
        unit_of_work(engine) as session,
    ):
        found = find_tenant(session, slug)
        members = all_members(session, found.id)
        click.echo(_describe_tenant(found))
        rows = [("EMAIL", "ROLE", "STATUS", "LAST SIGN-IN")] + [
            (
                u.email,
                u.role,
                u.status,
                f"{u.last_login_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
                if u.last_login_at
                else "never",
            )
            for u in members
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        for row in rows:
            click.echo(
                "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
                + "  "
                + row[3]
            )


@user.command("promote")
@click.argument("slug")
@click.argument("email")
@data_dir_option
def user_promote(slug: str, email: str, data_dir: Path | None) -> None:
    """Make EMAIL an admin of tenant SLUG (the user is created if needed)."""
    with (
        admin_database(resolve_data_dir(data_dir)) as (_settings, engine),
        unit_of_work(engine) as session,
    ):
        found = find_tenant(session, slug)
        before = user_by_email(session, found.id, normalise_email(email))
        was = (before.role, before.status) if before is not None else None
        promoted = promote_user(session, found, email)
    if was is None:
        click.echo(f"{promoted.email} was not in {slug}: added as an active admin")
    elif was[0] == "admin":
        click.echo(f"{promoted.email} is already an admin of {slug}; nothing changed")
    else:
        still = " (still invited: an admin once they sign in)" if was[1] == "invited" else ""
        click.echo(f"{promoted.email} was a {was[0]} of {slug}; now an admin{still}")


@click.command()
@click.argument("slug")
@click.option("--email", default=None, help="One member's usage (default: the whole tenant's).")
@click.option("--json", "as_json", is_flag=True, help="Print GET /v1/usage's JSON body.")
@data_dir_option
def usage(slug: str, email: str | None, as_json: bool, data_dir: Path | None) -> None:
    """Tokens tenant SLUG spent in the last 24 hours and 7 days, by model, kind and member,
    and its monthly quota: the figures of GET /v1/usage (scope=tenant, or one member's)."""
    with (
        admin_database(resolve_data_dir(data_dir)) as (_settings, engine),
        unit_of_work(engine) as session,
    ):
        found = find_tenant(session, slug)
        member = None
        if email is not None:
            member = user_by_email(session, found.id, normalise_email(email))
            if member is None:
                raise NotFound(f"{normalise_email(email)} is not a member of {slug}")
        report = usage_report_of(session, found.id, member.id if member else None)
        quota = quota_state_of(session.execute(quota_statement(found.id)).one())
    shown = usage_out("user" if member else "tenant", report, quota)
    if as_json:
        click.echo(msgspec.json.encode(shown).decode())
        return
    click.echo(f"{slug}" + (f", {member.email}" if member else " (every member)") + ":")
    for label, window in (("last 24 hours", shown.last_24h), ("last 7 days", shown.last_7d)):
        click.echo(
            f"  {label}: {window.total_tokens:,} tokens ({window.prompt_tokens:,} in, "
            f"{window.completion_tokens:,} out) in {window.requests:,} requests"
            + (f", {window.estimated_tokens:,} estimated" if window.estimated_tokens else "")
        )
        for heading, parts in (("model", window.by_model), ("kind", window.by_kind)):
            for name, tokens in sorted(parts.items()):
                click.echo(f"    {heading} {name}: {tokens.total_tokens:,} tokens")
        for person in window.by_user or []:
            click.echo(f"    {person.email or '(a deleted user)'}: {person.total_tokens:,} tokens")
    if shown.quota.monthly_tokens is None:
        click.echo(f"  this month: {shown.quota.used_tokens:,} tokens (no quota)")
    else:
        click.echo(
            f"  this month: {shown.quota.used_tokens:,} of {shown.quota.monthly_tokens:,} "
            f"tokens, {shown.quota.remaining_tokens:,} left"
        )
