"""The `docuchat` command: the dev stack, migrations, tokens, bulk ingestion and re-embedding;
the commands for tenants, members and usage live in `tools/member_commands.py`."""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import click
import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import Engine, select, text

from api.signin.tokens import issue_access_token
from bootstrap import bootstrap
from core.errors import DocuChatError
from db.accounts import find_tenant
from db.batches import queue_reingestion
from db.engine import unit_of_work
from db.jobs import FINISHED
from db.migrate import downgrade, upgrade
from db.models import Tenant
from db.roles import ensure_app_login
from tools.admin_database import (
    admin_database,
    configured,
    data_dir_option,
    owner_database,
    resolve_data_dir,
    settings_for,
)
from tools.bulk_ingest import FileResult, documents_under, ingest_paths
from tools.devstack import DevOptions, recorded_api_url, run_dev
from tools.embedded import EmbeddedRedis
from tools.member_commands import tenant, usage, user
from transport.queue import wake_ingestion
from usecases.members import (
    get_or_create_user,
)


class DocuChatGroup(click.Group):
    """Prints DocuChat's own errors as one clear line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except DocuChatError as exc:
            click.echo(f"docuchat: {exc}", err=True)
            sys.exit(2)


@click.group(cls=DocuChatGroup)
def main() -> None:
    """DocuChat: chat with your documents."""


main.add_command(tenant)
main.add_command(user)
main.add_command(usage)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the API binds.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@data_dir_option
def dev(host: str, port: int, data_dir: Path | None) -> None:
    """Run the whole service in the foreground (embedded Postgres and Redis unless configured).
    The workers are sized by CHAT_WORKER_PROCESSES/THREADS and INGEST_WORKER_PROCESSES/THREADS."""
    resolved = resolve_data_dir(data_dir)
    options = DevOptions(data_dir=resolved, host=host, port=port)
    sys.exit(run_dev(options, settings_for(resolved)))


@main.command()
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@click.option("--down", is_flag=True, help="Downgrade to --revision instead of upgrading.")
@data_dir_option
def migrate(revision: str, down: bool, data_dir: Path | None) -> None:
    """Apply database migrations (to head by default) as the schema's owner
    (DATABASE_OWNER_URL), then make the app's own login as DATABASE_URL names it."""
    with owner_database(resolve_data_dir(data_dir)) as (settings, engine, _embedded):
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


@main.command()
@click.argument("slug")
@click.argument("email")
@data_dir_option
def token(slug: str, email: str, data_dir: Path | None) -> None:
    """Print an access token for EMAIL in tenant SLUG (the user is created if needed)."""
    with admin_database(resolve_data_dir(data_dir)) as (settings, engine):
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
    with admin_database(resolve_data_dir(data_dir)) as (settings, engine):
        with unit_of_work(engine) as session:
            found = find_tenant(session, slug)
            user = get_or_create_user(session, found, email)
        access = issue_access_token(settings, user.id, found.id, user.token_version).token
    base, found_how = _api_url(api_url, resolve_data_dir(data_dir))
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
    if from_environment := configured("DOCUCHAT_API"):
        return from_environment, "from DOCUCHAT_API"
    if recorded := recorded_api_url(data_dir):
        return recorded, f"where the `docuchat dev` of {data_dir} said it runs"
    return "http://127.0.0.1:8000", "the default"


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
    resolved = resolve_data_dir(data_dir)
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
