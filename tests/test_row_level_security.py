"""Row-level security holds even when a query forgets its tenant filter."""

import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from bootstrap import bootstrap
from core.errors import ConfigurationError
from core.settings import Settings
from db.engine import unit_of_work
from db.models import Document
from db.roles import check_app_login, ensure_app_login
from tests.stack import TEST_JWT_SECRET, Services
from tools.devstack import api_command
from tools.embedded import free_port
from usecases.members import create_tenant


@pytest.fixture(scope="module")
def app_engine(settings: Settings, engine: Engine) -> Iterator[Engine]:
    app = bootstrap(settings).engine  # the RLS-bound login the API and workers use
    yield app
    app.dispose()


def _tenant_with_document(engine: Engine) -> uuid.UUID:
    with unit_of_work(engine) as session:
        tenant = create_tenant(session, f"rls-{uuid.uuid4().hex[:8]}", "RLS")
        session.add(
            Document(tenant_id=tenant.id, filename="a.pdf", size_bytes=1, sha256=uuid.uuid4().hex)
        )
    return tenant.id


def test_unfiltered_query_sees_only_the_scoped_tenant(engine: Engine, app_engine: Engine) -> None:
    tenant_a, tenant_b = _tenant_with_document(engine), _tenant_with_document(engine)
    with unit_of_work(app_engine, tenant_a) as session:
        seen = set(session.scalars(select(Document.tenant_id)))  # deliberately no WHERE
    assert seen == {tenant_a}
    with unit_of_work(engine) as session:  # the owner sees both: the rows are really there
        assert {tenant_a, tenant_b} <= set(session.scalars(select(Document.tenant_id)))


def test_no_tenant_scope_means_no_rows(engine: Engine, app_engine: Engine) -> None:
    _tenant_with_document(engine)
    with unit_of_work(app_engine) as session:
        assert session.scalars(select(Document.id)).all() == []
    with app_engine.connect() as conn:  # a pooled connection after a scoped transaction
        assert conn.execute(text("SELECT count(*) FROM documents")).scalar() == 0


def test_writing_another_tenants_row_is_refused(engine: Engine, app_engine: Engine) -> None:
    tenant_a, tenant_b = _tenant_with_document(engine), _tenant_with_document(engine)
    with pytest.raises(ProgrammingError, match="row-level security"):  # noqa: SIM117
        with unit_of_work(app_engine, tenant_a) as session:
            session.add(Document(tenant_id=tenant_b, filename="x.pdf", size_bytes=1, sha256="x"))


def test_the_app_role_cannot_bypass_security(app_engine: Engine) -> None:
    with app_engine.connect() as conn:
        row = conn.execute(
            text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        ).one()
    assert tuple(row) == (False, False)


def test_every_table_with_a_tenant_id_has_row_level_security(engine: Engine) -> None:
    with engine.connect() as conn:
        unguarded = conn.execute(
            text(
                "SELECT c.relname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid "
                "WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace "
                "AND a.attname = 'tenant_id' AND NOT (c.relrowsecurity AND EXISTS "
                "(SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid))"
            )
        ).scalars()
        assert list(unguarded) == []


# ---- the app's own login ----------------------------------------------------------------------


def test_the_app_login_can_become_neither_the_owner_nor_a_superuser(
    app_engine: Engine, engine: Engine
) -> None:
    with engine.connect() as conn:
        owner = conn.execute(text("SELECT tableowner FROM pg_tables WHERE tablename = 'documents'"))
        owner_name = owner.scalar_one()
    with app_engine.connect() as conn:
        login = conn.execute(text("SELECT session_user")).scalar_one()
        assert login == "docuchat_app"
        for attempt in (
            f'SET ROLE "{owner_name}"',
            "SET ROLE postgres",
            "RESET ROLE; SET ROLE postgres",
        ):
            with pytest.raises(ProgrammingError, match="permission denied"):
                conn.exec_driver_sql(attempt)
            conn.rollback()
        with pytest.raises(ProgrammingError, match="permission denied"):
            conn.exec_driver_sql("SET SESSION AUTHORIZATION postgres")
        conn.rollback()
        conn.exec_driver_sql("RESET ROLE")  # back to the login itself: still powerless
        row = conn.execute(
            text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        ).one()
        assert tuple(row) == (False, False)
        check_app_login(conn)  # what the API and workers check at start


def test_ensure_app_login_makes_a_login_of_database_url_and_refuses_the_owner(
    services: Services, settings: Settings, engine: Engine
) -> None:
    with pytest.raises(ConfigurationError, match="is a superuser"):
        ensure_app_login(engine, services.owner_url)
    with engine.connect() as conn:  # refused, not demoted
        assert conn.execute(
            text("SELECT rolsuper FROM pg_roles WHERE rolname = 'postgres'")
        ).scalar()

    name = f"docuchat_api_{uuid.uuid4().hex[:6]}"
    url = make_url(services.database_url).set(username=name, password="s3cret-pass")
    assert ensure_app_login(engine, url.render_as_string(hide_password=False)) == name
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT rolcanlogin, rolsuper, pg_has_role(rolname, 'docuchat_app', 'MEMBER')"
                    " FROM pg_roles WHERE rolname = :n"
                ),
                {"n": name},
            ).one()
        assert tuple(row) == (True, False, True)
        login_settings = settings.model_copy(
            update={"database_url": url.render_as_string(hide_password=False)}
        )
        other_login = bootstrap(login_settings).engine
        try:
            tenant = _tenant_with_document(engine)
            with unit_of_work(other_login, tenant) as session:
                assert set(session.scalars(select(Document.tenant_id))) == {tenant}
        finally:
            other_login.dispose()
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP ROLE "{name}"')


def test_the_api_refuses_to_start_signed_in_as_the_owner(
    services: Services, engine: Engine
) -> None:
    env = os.environ | {
        "APP_ENV": "test",
        "DATABASE_URL": services.owner_url,
        "REDIS_URL": services.redis_url,
        "JWT_SECRET": TEST_JWT_SECRET,
    }
    result = subprocess.run(
        api_command("127.0.0.1", free_port()), env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "refusing to start" in result.stderr
    assert "signs in as 'postgres', which is or can become a superuser" in result.stderr
