import json
import uuid
from typing import Any

from click.testing import CliRunner
from sqlalchemy import text

from api.signin.tokens import decode_access_token
from core.settings import Settings
from standins.documents import english_pdf, filler, persian_filler, persian_pdf
from tests.ingest_helpers import ingest, tenant_client
from tests.stack import LiveServer, Services, WorkerProcess, settings_for
from tools.cli import main
from tools.embedded import free_port


def _slug() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def test_tenant_create_prints_the_new_id(cli: CliRunner, engine) -> None:  # type: ignore[no-untyped-def]
    slug = _slug()
    result = cli.invoke(main, ["tenant", "create", slug, "--name", "Acme Inc"])
    assert result.exit_code == 0, result.output
    tenant_id = uuid.UUID(result.stdout.strip())
    with engine.connect() as conn:
        row = conn.execute(text("SELECT slug, name FROM tenants WHERE id = :id"), {"id": tenant_id})
        assert tuple(row.one()) == (slug, "Acme Inc")


def test_tenant_create_twice_is_a_clear_error(cli: CliRunner) -> None:
    slug = _slug()
    assert cli.invoke(main, ["tenant", "create", slug, "--name", "A"]).exit_code == 0
    again = cli.invoke(main, ["tenant", "create", slug, "--name", "A"])
    assert again.exit_code == 2
    assert f"a tenant with slug '{slug}' already exists" in again.output


def test_tenant_create_rejects_a_bad_slug(cli: CliRunner) -> None:
    result = cli.invoke(main, ["tenant", "create", "Not A Slug", "--name", "x"])
    assert result.exit_code == 2
    assert "not a valid tenant slug" in result.output


def test_token_creates_the_user_and_prints_a_valid_token_last(
    cli: CliRunner,
    settings: Settings,
    engine,  # type: ignore[no-untyped-def]
) -> None:
    slug = _slug()
    tenant_id = uuid.UUID(
        cli.invoke(main, ["tenant", "create", slug, "--name", "T"]).stdout.strip()
    )
    first = cli.invoke(main, ["token", slug, "  Alice@Example.COM "])
    assert first.exit_code == 0, first.output
    claims = decode_access_token(settings, first.stdout.split()[-1])
    assert claims.tenant_id == tenant_id
    second = cli.invoke(main, ["token", str(tenant_id), "alice@example.com"])  # by id, same user
    assert decode_access_token(settings, second.stdout.split()[-1]).user_id == claims.user_id
    with engine.connect() as conn:
        emails = conn.execute(
            text("SELECT email FROM users WHERE tenant_id = :t"), {"t": tenant_id}
        ).scalars()
        assert list(emails) == ["alice@example.com"]


def test_token_for_an_unknown_tenant_or_bad_email_fails_clearly(cli: CliRunner) -> None:
    unknown = cli.invoke(main, ["token", "no-such-tenant", "a@example.com"])
    assert unknown.exit_code == 2 and "no tenant 'no-such-tenant'" in unknown.output
    slug = _slug()
    cli.invoke(main, ["tenant", "create", slug, "--name", "T"])
    bad = cli.invoke(main, ["token", slug, "not-an-email"])
    assert bad.exit_code == 2 and "not a valid e-mail address" in bad.output


def test_migrate_reports_what_it_did(cli: CliRunner) -> None:
    result = cli.invoke(main, ["migrate"])
    assert result.exit_code == 0, result.output
    assert "upgraded to head" in result.output
    assert "the API and workers sign in as docuchat_app" in result.output


def test_bulk_ingest_loads_a_folder_skips_duplicates_and_resumes(
    cli: CliRunner,
    services: Services,
    engine,
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    settings = settings_for(services)
    slug = _slug()
    assert cli.invoke(main, ["tenant", "create", slug, "--name", "Bulk"]).exit_code == 0
    folder = tmp_path / "library"
    (folder / "persian").mkdir(parents=True)
    english = english_pdf([filler(21, 6)])
    (folder / "harbour.pdf").write_bytes(english)
    (folder / "copy of harbour.PDF").write_bytes(english)  # the same bytes: one document
    (folder / "persian" / "garden.pdf").write_bytes(persian_pdf([persian_filler(5, 4)]))
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 8)
    (folder / "notes.md").write_text("# Notes\n\nThe ferry leaves at seven.\n")
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff not a document, not looked at")
    command = ["ingest", str(folder), "--tenant", slug, "--email", "ops@example.com"]
    with LiveServer(settings) as server, WorkerProcess(settings):
        first = cli.invoke(main, [*command, "--api", server.url])
        again = cli.invoke(main, [*command, "--api", server.url, "--concurrency", "1"])
    assert first.exit_code == 1, first.output  # one file was refused
    assert "5 files: 3 new (3 ingested), 1 already there, 1 refused, 0 failed" in first.output
    assert "refused: " in first.output and "broken.pdf: 422" in first.output
    assert again.exit_code == 1
    assert "5 files: 0 new (0 ingested), 4 already there, 1 refused, 0 failed" in again.output
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT d.status, u.email FROM documents d JOIN tenants t ON t.id = d.tenant_id"
                " JOIN users u ON u.id = d.uploaded_by WHERE t.slug = :slug"
            ),
            {"slug": slug},
        ).all()
    assert sorted(rows) == [("ready", "ops@example.com")] * 3


def test_bulk_ingest_says_when_the_api_is_not_there(cli: CliRunner, tmp_path) -> None:  # type: ignore[no-untyped-def]
    slug = _slug()
    assert cli.invoke(main, ["tenant", "create", slug, "--name", "Bulk"]).exit_code == 0
    (tmp_path / "a.pdf").write_bytes(english_pdf(["text"]))
    url = f"http://127.0.0.1:{free_port()}"
    result = cli.invoke(
        main, ["ingest", str(tmp_path), "--tenant", slug, "--email", "o@example.com", "--api", url]
    )
    assert result.exit_code == 1
    assert f"cannot reach the API at {url} (from --api)" in result.output
    assert "`make dev`" in result.output and "--api http://HOST:PORT" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = cli.invoke(main, ["ingest", str(empty), "--tenant", slug, "--email", "o@example.com"])
    assert nothing.exit_code == 2 and "no PDF files in the paths given" in nothing.output


def test_reindex_ingests_a_tenant_s_documents_again_and_no_one_else_s(
    cli: CliRunner,
    services: Services,
    engine,
    monkeypatch,
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    settings = settings_for(services)
    with LiveServer(settings) as server, WorkerProcess(settings):
        with tenant_client(engine, settings, server.url) as mine:
            ingest(mine, english_pdf([filler(31, 6)]), "one.pdf")
            ingest(mine, english_pdf([filler(32, 6), filler(33, 6)]), "two.pdf")
            slug = mine.headers["X-Tenant-ID"]
        with tenant_client(engine, settings, server.url) as other:
            theirs = ingest(other, english_pdf([filler(34, 6)]), "theirs.pdf")
        before = _chunk_ids(engine)
        monkeypatch.setenv("REDIS_URL", settings.redis_url or "")
        result = cli.invoke(main, ["reindex", "--tenant", slug])
    assert result.exit_code == 0, result.output
    assert "2 documents queued for re-embedding" in result.stdout
    assert "2 re-embedded, 0 failed" in result.stdout
    after = _chunk_ids(engine)
    mine_before = {c for c, (s, _) in before.items() if s == slug}
    mine_after = {c for c, (s, _) in after.items() if s == slug}
    assert mine_after and not mine_after & mine_before  # every chunk made anew
    theirs_before = {c for c, (_, d) in before.items() if d == theirs["id"]}
    assert theirs_before and theirs_before <= set(after)  # the other tenant's untouched


def test_reindex_needs_one_tenant_or_all_and_a_queue(cli: CliRunner, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    assert "--tenant SLUG, or give --all" in cli.invoke(main, ["reindex"]).output
    both = cli.invoke(main, ["reindex", "--tenant", "x", "--all"])
    assert both.exit_code == 2 and "--tenant SLUG, or give --all" in both.output
    monkeypatch.delenv("REDIS_URL", raising=False)
    slug = _slug()
    assert cli.invoke(main, ["tenant", "create", slug, "--name", "Q"]).exit_code == 0
    lost = cli.invoke(main, ["reindex", "--tenant", slug, "--data-dir", str(tmp_path)])
    assert lost.exit_code == 1 and "the workers' queue is out of reach" in lost.output


def _chunk_ids(engine) -> dict[str, tuple[str, str]]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT c.id, t.slug, c.document_id FROM chunks c"
                " JOIN tenants t ON t.id = c.tenant_id"
            )
        ).all()
    return {str(chunk): (slug, str(document)) for chunk, slug, document in rows}


def test_tenant_sign_up_policy_is_set_at_creation_and_changed_later(
    cli: CliRunner,
    engine,  # type: ignore[no-untyped-def]
) -> None:
    def policy(slug: str) -> tuple[str, list[str]]:
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT signup_policy, allowed_domains FROM tenants WHERE slug = :s"),
                {"s": slug},
            ).one()
        return row[0], list(row[1])

    plain, open_ = _slug(), _slug()
    assert cli.invoke(main, ["tenant", "create", plain, "--name", "P"]).exit_code == 0
    assert policy(plain) == ("invite", [])  # invite-only unless said otherwise
    made = cli.invoke(
        main,
        ["tenant", "create", open_, "--name", "O", "--signup", "open",
         "--allow-domain", "Acme.COM", "--allow-domain", "@b.example.org"],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert policy(open_) == ("open", ["acme.com", "b.example.org"])

    changed = cli.invoke(
        main, ["tenant", "update", open_, "--signup", "invite", "--allow-domain", "c.com"]
    )
    assert changed.exit_code == 0, changed.output
    assert "sign-up invite (invited members only); allowed domains: c.com" in changed.stdout
    assert policy(open_) == ("invite", ["c.com"])
    cleared = cli.invoke(main, ["tenant", "update", open_, "--no-allowed-domains"])
    assert cleared.exit_code == 0 and policy(open_) == ("invite", [])

    bad = cli.invoke(main, ["tenant", "update", open_, "--allow-domain", "not a domain"])
    assert bad.exit_code == 2 and "'not a domain' is not a mail domain" in bad.output
    both = cli.invoke(
        main, ["tenant", "update", open_, "--allow-domain", "d.com", "--no-allowed-domains"]
    )
    assert both.exit_code == 2 and "not both" in both.output
    wrong = cli.invoke(main, ["tenant", "create", _slug(), "--name", "W", "--signup", "closed"])
    assert wrong.exit_code == 2 and "'closed' is not one of 'invite', 'open'" in wrong.output


def test_user_invite_list_and_remove(
    cli: CliRunner,
    settings: Settings,
    smtp,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    inbox, port = smtp
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_PORT", str(port))
    monkeypatch.setenv("SMTP_STARTTLS", "false")
    slug = _slug()
    assert cli.invoke(main, ["tenant", "create", slug, "--name", "Crew"]).exit_code == 0
    boss, hand = f"boss-{slug}@example.com", f"hand-{slug}@example.com"

    invited = cli.invoke(main, ["user", "invite", slug, boss.upper(), "--role", "admin"])
    assert invited.exit_code == 0, invited.output
    assert f"{boss} is invited to {slug} as admin" in invited.stdout
    assert slug in inbox.mails_to(boss)[0]
    assert cli.invoke(main, ["user", "invite", slug, hand]).exit_code == 0
    again = cli.invoke(main, ["user", "invite", slug, hand])
    assert "invited again" in again.stdout  # an open invitation is sent again

    listed = cli.invoke(main, ["user", "list", slug])
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert "sign-up invite" in lines[0] and lines[1].split() == [
        "EMAIL", "ROLE", "STATUS", "LAST", "SIGN-IN",
    ]  # fmt: skip
    assert lines[2].split() == [boss, "admin", "invited", "never"]
    assert lines[3].split() == [hand, "member", "invited", "never"]

    removed = cli.invoke(main, ["user", "remove", slug, hand])
    assert removed.exit_code == 0 and f"{hand} is removed from {slug}" in removed.stdout
    assert "no active admin" in removed.stderr  # the invited admin has not signed in yet
    assert cli.invoke(main, ["user", "list", slug]).stdout.splitlines()[3].split()[2] == "removed"
    refused = cli.invoke(main, ["token", slug, hand])
    assert refused.exit_code == 2 and "was removed" in refused.output
    nobody = cli.invoke(main, ["user", "remove", slug, f"nobody-{slug}@example.com"])
    assert nobody.exit_code == 2 and "is not a member" in nobody.output


def test_promote_says_what_it_did_and_tenant_list_shows_every_tenant(cli: CliRunner) -> None:
    slug = _slug()
    assert cli.invoke(main, ["tenant", "create", slug, "--name", "Crew of five"]).exit_code == 0
    newcomer, member = f"new-{slug}@example.com", f"m-{slug}@example.com"
    assert cli.invoke(main, ["user", "invite", slug, member]).exit_code == 0

    added = cli.invoke(main, ["user", "promote", slug, newcomer])
    assert added.exit_code == 0 and f"{newcomer} was not in {slug}: added as an active admin" in (
        added.stdout
    )
    raised = cli.invoke(main, ["user", "promote", slug, member]).stdout
    assert f"{member} was a member of {slug}; now an admin (still invited" in raised
    same = cli.invoke(main, ["user", "promote", slug, member]).stdout
    assert f"{member} is already an admin of {slug}; nothing changed" in same

    listed = cli.invoke(main, ["tenant", "list"])
    assert listed.exit_code == 0, listed.output
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["SLUG", "NAME", "SIGN-UP", "MEMBERS", "DOCUMENTS", "STATE"]
    [ours] = [row for row in rows if row.startswith(slug + " ")]
    assert ours.split() == [slug, "Crew", "of", "five", "invite", "2", "0", "active"]


def test_usage_prints_the_figures_of_the_usage_api(
    cli: CliRunner,
    server: LiveServer,
    engine,
    api_settings: Settings,  # type: ignore[no-untyped-def]
) -> None:
    from standins.chat_client import ask, read_stream
    from tests.ingest_helpers import colleague_client

    with tenant_client(engine, api_settings, server.url) as member:
        ingest(member, english_pdf([filler(31, 5)]), "usage.pdf")
        read_stream(member, ask(member, "What does it say?")["stream_url"])
        slug, email = member.headers["X-Tenant-ID"], member.get("/v1/me").json()["email"]
        mine = member.get("/v1/usage").json()
        with colleague_client(engine, api_settings, member, role="admin") as admin:
            whole = admin.get("/v1/usage", params={"scope": "tenant"}).json()

    def timeless(body: Any) -> Any:  # the figures, not the moment they were read at
        if isinstance(body, dict):
            return {k: timeless(v) for k, v in body.items() if k not in ("at", "since")}
        return [timeless(v) for v in body] if isinstance(body, list) else body

    def same(printed: str, api: dict[str, Any]) -> None:
        assert timeless(json.loads(printed)) == timeless(api)

    one = cli.invoke(main, ["usage", slug, "--email", email, "--json"])
    assert one.exit_code == 0, one.output
    same(one.stdout, mine)
    same(cli.invoke(main, ["usage", slug, "--json"]).stdout, whole)
    assert mine["last_24h"]["total_tokens"] > 0

    text_report = cli.invoke(main, ["usage", slug]).stdout
    total = whole["last_7d"]["total_tokens"]
    assert f"last 7 days: {total:,} tokens" in text_report and email in text_report
    stranger = cli.invoke(main, ["usage", slug, "--email", "nobody@example.com"])
    assert stranger.exit_code == 2 and "is not a member of" in stranger.output


def test_bulk_ingest_finds_a_running_dev_stack_on_any_port(
    cli: CliRunner,
    server: LiveServer,
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    from tools.devstack import record_api_url

    slug = _slug()
    assert cli.invoke(main, ["tenant", "create", slug, "--name", "Found"]).exit_code == 0
    data = tmp_path / "data"
    data.mkdir()
    record_api_url(data, server.url)  # as `docuchat dev --port N` does while it runs
    (tmp_path / "notes.md").write_text("# Ferry\n\nThe ferry leaves at seven.\n")
    command = ["ingest", str(tmp_path / "notes.md"), "--tenant", slug, "--email", "o@example.com"]
    result = cli.invoke(main, [*command, "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    assert "1 files: 1 new (1 ingested)" in result.output
