"""Backups as docs/deploy.md tells an operator to take them: pg_dump with the owner's role,
pg_restore into an empty database, `docuchat migrate`, and the restored service finds the
document, its pages and its conversation."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import make_url

from standins.chat_client import ask, read_stream
from standins.documents import english_pdf, filler
from tests.ingest_helpers import ingest, tenant_client
from tests.stack import (
    LiveServer,
    OwnDatabase,
    Services,
    WorkerProcess,
    app_url_of,
)
from tools.cli import main

LANTERN = "The copper lantern of the harbour is lit at dusk by the keeper. " + filler(3, 6)


def _binary(name: str) -> str:
    """The client tools of the embedded server's own Postgres (pg_dump must match it)."""
    from pgserver._commands import POSTGRES_BIN_PATH

    return str(Path(POSTGRES_BIN_PATH) / name)


def test_a_dump_restored_into_an_empty_database_serves_the_same_tenant(
    services: Services,
    own_database: OwnDatabase,
    cli: CliRunner,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    redis_database: str,
) -> None:
    settings = own_database.settings(services, REDIS_URL=redis_database)  # its own worker
    with (
        WorkerProcess(settings),
        LiveServer(settings) as server,
        tenant_client(own_database.engine, settings, server.url) as client,
    ):
        document = ingest(client, english_pdf([LANTERN]), "harbour.pdf")
        assert document["status"] == "ready", document
        read_stream(client, ask(client, "When is the copper lantern lit?")["stream_url"])
        headers = dict(client.headers)

    dump = tmp_path / "docuchat.dump"
    subprocess.run(
        [_binary("pg_dump"), "--format=custom", "--file", str(dump),
         own_database.owner_url.replace("postgresql+psycopg", "postgresql")],
        check=True,
    )  # fmt: skip
    restored = f"restored_{uuid.uuid4().hex[:8]}"
    admin = make_url(services.owner_url).set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(False), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{restored}"')
    owner_url = make_url(own_database.owner_url).set(database=restored)
    subprocess.run(
        [_binary("pg_restore"), "--no-owner", "--dbname",
         owner_url.set(drivername="postgresql").render_as_string(False), str(dump)],
        check=True,
    )  # fmt: skip

    owner = owner_url.render_as_string(False)
    monkeypatch.setenv("DATABASE_OWNER_URL", owner)
    monkeypatch.setenv("DATABASE_URL", app_url_of(owner))
    migrated = cli.invoke(main, ["migrate"])
    assert migrated.exit_code == 0, migrated.output

    back = settings.model_copy(update={"database_url": app_url_of(owner)})
    back = back.model_copy(update={"database_owner_url": owner})
    with (
        LiveServer(back) as server,
        httpx.Client(base_url=server.url, headers=headers, timeout=30) as client,
    ):
        files = client.get("/v1/files").json()["items"]
        assert [f["filename"] for f in files] == ["harbour.pdf"]
        assert "copper lantern" in client.get(f"/v1/files/{files[0]['id']}/pages/1").json()["text"]
        found = client.post("/v1/search", json={"query": "copper lantern"}).json()
        assert found["results"][0]["document_id"] == document["id"]
        [session] = client.get("/v1/sessions").json()["items"]
        messages = client.get(f"/v1/sessions/{session['id']}/messages").json()["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant"]
    with psycopg.connect(admin.render_as_string(False), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{restored}" WITH (FORCE)')
