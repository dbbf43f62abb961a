"""Row-level security holds even when a query forgets its tenant filter."""

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import ProgrammingError

from core.settings import Settings
from db.accounts import create_tenant
from db.engine import create_sync_engine, unit_of_work
from db.models import Document


@pytest.fixture(scope="module")
def app_engine(settings: Settings, engine: Engine) -> Iterator[Engine]:
    app = create_sync_engine(settings)  # the RLS-bound role the API and workers use
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
