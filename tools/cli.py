"""The `docuchat` command: the dev stack, migrations, and the operators' admin commands."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any, ClassVar

import click
import httpx
import msgspec
from dotenv import dotenv_values
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine, select, text

from api.signin.mailer import deliver, invitation_mail
from api.signin.tokens import issue_access_token
from api.usage import usage_out
from core.bootstrap import bootstrap, owner_engine
from core.errors import DocuChatError, NotFound
from core.settings import Settings, load_settings
from db.accounts import find_tenant, tenant_overview
from db.batches import queue_reingestion
from db.engine import unit_of_work
from db.jobs import FINISHED
from db.members import all_members, user_by_email
from db.migrate import check_schema, downgrade, upgrade
from db.models import Tenant
from db.roles import ensure_app_login
from db.usage import quota_state_of, quota_statement, set_quota, usage_report_of
from tools.bulk_ingest import FileResult, documents_under, ingest_paths
from tools.devstack import DevOptions, recorded_api_url, run_dev
from tools.embedded import EmbeddedPostgres, EmbeddedRedis, secret_from_data_dir
from transport.broker import wake_ingestion
from usecases.identity import normalise_email
from usecases.members import (
    create_tenant,
    get_or_create_user,
    invite,
    promote_user,
    remove,
    update_tenant,
)
from usecases.membership import ROLES, SIGNUP_POLICIES

DATA_DIR_HELP = "Folder of the embedded Postgres and Redis (default: DATA_DIR or .docuchat)."


def _configured(name: str) -> str | None:
    return os.environ.get(name) or dotenv_values(".env").get(name) or None


def _resolve_data_dir(option: Path | None) -> Path:
    return (option or Path(_configured("DATA_DIR") or ".docuchat")).resolve()


def settings_for(data_dir: Path) -> Settings:
    """The settings of the environment and `.env`, pointed at this data folder; outside
    production, the folder's own JWT secret when none is set (every process of a `docuchat
    dev` agrees on it)."""
    overrides: dict[str, object] = {"data_dir": data_dir}
    if not _configured("JWT_SECRET") and _configured("APP_ENV") != "production":
        overrides["jwt_secret"] = secret_from_data_dir(data_dir)
    return load_settings(overrides=overrides)


@contextlib.contextmanager
def owner_database(data_dir: Path) -> Iterator[tuple[Settings, Engine, bool]]:
    """The owner's engine on DATABASE_OWNER_URL when a database is configured, else on the
    data folder's embedded server (joined if running, started and stopped again if not); the
    flag says which."""
    settings = settings_for(data_dir)
    postgres = None
    if not settings.database_url and not settings.database_owner_url:
        postgres = EmbeddedPostgres(data_dir)
        owner_url = postgres.start()
        settings = settings.model_copy(
            update={"database_owner_url": owner_url, "database_url": postgres.app_url()}
        )
    engine = None
    try:
        engine = owner_engine(settings)
        yield settings, engine, postgres is not None
    finally:
        if engine is not None:
            engine.dispose()
        if postgres is not None:
            postgres.stop()


@contextlib.contextmanager
def admin_database(data_dir: Path) -> Iterator[tuple[Settings, Engine]]:
    """A database whose schema fits the code: the embedded one is migrated on the way."""
    with owner_database(data_dir) as (settings, engine, embedded):
        if embedded:
            upgrade(engine, settings.embedding_dimension)
            ensure_app_login(engine, settings.database_url or "")
        with engine.connect() as conn:
            check_schema(conn, settings.embedding_dimension)
        yield settings, engine


class DocuChatGroup(click.Group):
    """Prints DocuChat's own errors as one clear line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except DocuChatError as exc:
            click.echo(f"docuchat: {exc}", err=True)
            sys.exit(2)


data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help=DATA_DIR_HELP
)


@click.group(cls=DocuChatGroup)
def main() -> None:
    """DocuChat: chat with your PDFs."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the API binds.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@data_dir_option
def dev(host: str, port: int, data_dir: Path | None) -> None:
    """Run the whole service in the foreground (embedded Postgres and Redis unless configured).
    The workers are sized by CHAT_WORKER_PROCESSES/THREADS and INGEST_WORKER_PROCESSES/THREADS."""
    resolved = _resolve_data_dir(data_dir)
    options = DevOptions(data_dir=resolved, host=host, port=port)
    sys.exit(run_dev(options, settings_for(resolved)))


@main.command()
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@click.option("--down", is_flag=True, help="Downgrade to --revision instead of upgrading.")
@data_dir_option
def migrate(revision: str, down: bool, data_dir: Path | None) -> None:
    """Apply database migrations (to head by default) as the schema's owner
    (DATABASE_OWNER_URL), then make the app's own login as DATABASE_URL names it."""
    with owner_database(_resolve_data_dir(data_dir)) as (settings, engine, _embedded):
        step = downgrade if down else upgrade
        step(engine, settings.embedding_dimension, revision)
        click.echo(f"database {'downgraded' if down else 'upgraded'} to {revision}")
        if down:
            return
        if not settings.database_url:
            click.echo("DATABASE_URL is not set: no app login was made", err=True)
            return
        login = ensure_app_login(engine, settings.database_url)
        click.echo(f"the API and workers sign in as {login}, which row-level security binds")


@main.group()
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
    with admin_database(_resolve_data_dir(data_dir)) as (_settings, engine):
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
        admin_database(_resolve_data_dir(data_dir)) as (_settings, engine),
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
        admin_database(_resolve_data_dir(data_dir)) as (_settings, engine),
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
        admin_database(_resolve_data_dir(data_dir)) as (_settings, engine),
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


@main.group()
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
    with admin_database(_resolve_data_dir(data_dir)) as (settings, engine):
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
    with admin_database(_resolve_data_dir(data_dir)) as (_settings, engine):
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
        admin_database(_resolve_data_dir(data_dir)) as (_settings, engine),
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
        admin_database(_resolve_data_dir(data_dir)) as (_settings, engine),
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


@main.command()
@click.argument("slug")
@click.argument("email")
@data_dir_option
def token(slug: str, email: str, data_dir: Path | None) -> None:
    """Print an access token for EMAIL in tenant SLUG (the user is created if needed)."""
    with admin_database(_resolve_data_dir(data_dir)) as (settings, engine):
        with unit_of_work(engine) as session:
            found = find_tenant(session, slug)
            user = get_or_create_user(session, found, email)
        issued = issue_access_token(settings, user.id, found.id, user.token_version)
        click.echo(f"access token for {user.email} in {found.slug}, valid {issued.expires_in}s:")
        click.echo(issued.token)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--tenant", "slug", required=True, help="The tenant the documents go to.")
@click.option("--email", required=True, help="The user they are uploaded as (made if needed).")
@click.option("--api", "api_url", default=None,
              help="The API's URL (default: DOCUCHAT_API or http://127.0.0.1:8000).")  # fmt: skip
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 32),
              help="Uploads at a time.")  # fmt: skip
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Follow the ingestion of the uploaded files to its end.")  # fmt: skip
@data_dir_option
def ingest(
    paths: tuple[Path, ...],
    slug: str,
    email: str,
    api_url: str | None,
    concurrency: int,
    wait: bool,
    data_dir: Path | None,
) -> None:
    """Upload documents (files, or folders searched for PDF, Word, HTML, Markdown and text
    files) to tenant SLUG through the API.

    Files the tenant already has are skipped, so running it again resumes an interrupted load.
    """
    files = documents_under(paths)
    if not files:
        raise click.UsageError("no PDF files in the paths given")
    with admin_database(_resolve_data_dir(data_dir)) as (settings, engine):
        with unit_of_work(engine) as session:
            found = find_tenant(session, slug)
            user = get_or_create_user(session, found, email)
        access = issue_access_token(settings, user.id, found.id, user.token_version).token
    base, found_how = _api_url(api_url, _resolve_data_dir(data_dir))
    headers = {"Authorization": f"Bearer {access}", "X-Tenant-ID": found.slug}
    with (
        httpx.Client(base_url=base, headers=headers, timeout=120) as client,
        _progress_bars() as progress,
    ):
        try:
            client.get("/healthz")
        except httpx.TransportError as exc:
            raise click.ClickException(
                f"cannot reach the API at {base} ({found_how}): {exc}. Start it with "
                "`make dev` (or `docuchat dev`), or name where it runs with "
                "--api http://HOST:PORT (or DOCUCHAT_API)"
            ) from None
        uploading = progress.add_task("uploaded", total=len(files))
        ingesting = progress.add_task("ingested", total=None, visible=wait)

        def uploaded(result: FileResult) -> None:
            progress.advance(uploading)
            if result.job_id:
                current = progress.tasks[ingesting].total or 0
                progress.update(ingesting, total=current + 1)

        report = ingest_paths(
            client,
            files,
            concurrency=concurrency,
            wait=wait,
            on_uploaded=uploaded,
            on_finished=lambda _: progress.advance(ingesting),
        )
    new = report.count("succeeded") + report.count("uploaded")
    click.echo(
        f"{len(files)} files: {new} new"
        + (f" ({report.count('succeeded')} ingested)" if wait else " (ingesting)")
        + f", {report.count('already there')} already there, "
        f"{report.count('refused')} refused, {report.count('failed')} failed"
    )
    for problem in report.problems:
        click.echo(f"  {problem.outcome}: {problem.path}: {problem.detail}", err=True)
    if report.problems:
        sys.exit(1)


def _api_url(option: str | None, data_dir: Path) -> tuple[str, str]:
    """Where the API runs, and how that was decided: --api, DOCUCHAT_API, the URL a running
    `docuchat dev` of the data folder recorded (whatever its port), or the default."""
    if option:
        return option, "from --api"
    if configured := _configured("DOCUCHAT_API"):
        return configured, "from DOCUCHAT_API"
    if recorded := recorded_api_url(data_dir):
        return recorded, f"where the `docuchat dev` of {data_dir} said it runs"
    return "http://127.0.0.1:8000", "the default"


@main.command()
@click.argument("slug")
@click.option("--email", default=None, help="One member's usage (default: the whole tenant's).")
@click.option("--json", "as_json", is_flag=True, help="Print GET /v1/usage's JSON body.")
@data_dir_option
def usage(slug: str, email: str | None, as_json: bool, data_dir: Path | None) -> None:
    """Tokens tenant SLUG spent in the last 24 hours and 7 days, by model, kind and member,
    and its monthly quota: the figures of GET /v1/usage (scope=tenant, or one member's)."""
    with (
        admin_database(_resolve_data_dir(data_dir)) as (_settings, engine),
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


@main.command()
@click.option("--tenant", "slug", default=None, help="The tenant whose documents to re-embed.")
@click.option("--all", "every", is_flag=True, help="Every tenant's documents.")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Follow the work to its end.")  # fmt: skip
@data_dir_option
def reindex(slug: str | None, every: bool, wait: bool, data_dir: Path | None) -> None:
    """Ingest a tenant's documents again, to re-embed them after the embedding provider or
    model changed (same width). The workers do it; documents stay searchable meanwhile."""
    if bool(slug) == every:
        raise click.UsageError("name a tenant with --tenant SLUG, or give --all")
    resolved = _resolve_data_dir(data_dir)
    with admin_database(resolved) as (settings, engine):
        queue_url = settings.redis_url or EmbeddedRedis.running_url(resolved)
        if not queue_url:
            raise click.ClickException(
                "REDIS_URL is not set and no `docuchat dev` runs on this data folder: "
                "the workers' queue is out of reach"
            )
        with unit_of_work(engine) as session:
            tenants = (
                [find_tenant(session, slug)]
                if slug
                else list(session.scalars(select(Tenant).where(Tenant.active)))
            )
            queued = [
                queue_reingestion(session, tenant.id, settings.ingest_batch_pages)
                for tenant in tenants
            ]
        services = bootstrap(settings.model_copy(update={"redis_url": queue_url}))
        try:  # as many turns as each tenant may run at once: each batch sends the next
            turns = sum(min(batches, settings.tenant_ingest_share) for _, batches in queued)
            wake_ingestion(services.broker, turns)
        finally:
            services.close()
        everything = [job_id for job_ids, _ in queued for job_id in job_ids]
        click.echo(f"{len(everything)} documents queued for re-embedding")
        if wait and everything:
            failed = _follow(engine, everything)
            click.echo(f"{len(everything) - len(failed)} re-embedded, {len(failed)} failed")
            for document, error in failed:
                click.echo(f"  failed: {document}: {error}", err=True)
            if failed:
                sys.exit(1)


def _progress_bars() -> Progress:
    """Named bars with counts and elapsed time, on stderr so stdout keeps the summary."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )


def _follow(engine: Engine, job_ids: list[uuid.UUID]) -> list[tuple[str, str]]:
    """Wait for the jobs to finish, with a progress bar; returns the failed ones' documents
    (file names) and errors."""
    query = text(
        "SELECT j.status, d.filename, j.error FROM jobs j LEFT JOIN documents d"
        " ON d.id = j.document_id WHERE j.id = ANY(:ids)"
    )
    with _progress_bars() as progress:
        task = progress.add_task("re-embedded", total=len(job_ids))
        while True:
            with engine.connect() as conn:
                rows = conn.execute(query, {"ids": job_ids}).all()
            done = [row for row in rows if row.status in FINISHED]
            progress.update(task, completed=len(done))
            if len(done) == len(job_ids):
                return [(row.filename, row.error) for row in done if row.status != "succeeded"]
            time.sleep(0.5)
