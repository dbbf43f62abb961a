"""Connection URLs and transactions. The caller owns the transaction: helpers here never
commit. The engines themselves are built in one place, bootstrap.py."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, sessionmaker

from core.errors import ConfigurationError
from core.settings import Settings


def sqlalchemy_url(settings: Settings, *, owner: bool = False) -> str:
    """DATABASE_URL (or, for the owner's work, DATABASE_OWNER_URL) with the psycopg 3 driver,
    whatever scheme the operator wrote."""
    name = "DATABASE_OWNER_URL" if owner else "DATABASE_URL"
    value = settings.database_owner_url if owner else settings.database_url
    if not value:
        if owner:
            raise ConfigurationError(
                "DATABASE_OWNER_URL is not set: migrations and admin commands sign in as the "
                "schema's owner (DATABASE_URL is the app's own login, which owns nothing), or "
                "run `docuchat dev` for the embedded stack"
            )
        raise ConfigurationError(
            "DATABASE_URL is not set: point it at Postgres with pgvector, "
            "or run `docuchat dev` for the embedded stack"
        )
    try:
        url = make_url(value)
    except Exception as exc:
        raise ConfigurationError(f"{name} is not a valid database URL: {exc}") from None
    if url.get_backend_name() not in ("postgresql", "postgres"):
        raise ConfigurationError(
            f"{name} must be a postgresql:// URL (got {url.get_backend_name()}://)"
        )
    return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def libpq_url(settings: Settings) -> str:
    """DATABASE_URL as libpq (and psycopg's own connections) read it."""
    url = make_url(sqlalchemy_url(settings))
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


# The role the API and workers work as: it owns nothing and row-level security binds it.
# They sign in as it, or as a login role that is a member of it, and switch to it at connect.
APP_ROLE = "docuchat_app"
SCOPE_SQL = text("SELECT set_config('app.tenant_id', :tenant_id, true)")


def app_connect_args(
    settings: Settings, statement_timeout_seconds: float | None = None
) -> dict[str, str | int]:
    """What the app's connections send at start: act as the RLS-bound role (a login that is
    a member of it switches to it; `docuchat_app` itself stays itself), give up connecting
    after DATABASE_CONNECT_TIMEOUT_SECONDS, and have Postgres cancel any statement running
    longer than `statement_timeout_seconds` (the API's request deadline)."""
    options = f"-c role={APP_ROLE}"
    if statement_timeout_seconds is not None:
        options += f" -c statement_timeout={int(statement_timeout_seconds * 1000)}"
    return {"options": options, "connect_timeout": settings.database_connect_timeout_seconds}


@contextmanager
def unit_of_work(engine: Engine, tenant_id: uuid.UUID | None = None) -> Iterator[Session]:
    """One transaction, scoped to `tenant_id` when given: committed when the block ends,
    rolled back if it raises."""
    factory = sessionmaker(engine, expire_on_commit=False)
    with factory.begin() as session:
        if tenant_id is not None:
            session.execute(SCOPE_SQL, {"tenant_id": str(tenant_id)})
        yield session


@asynccontextmanager
async def async_unit_of_work(
    engine: AsyncEngine, tenant_id: uuid.UUID | None = None
) -> AsyncIterator[AsyncSession]:
    factory = async_sessionmaker(engine, expire_on_commit=False)
    async with factory.begin() as session:
        if tenant_id is not None:
            await session.execute(SCOPE_SQL, {"tenant_id": str(tenant_id)})
        yield session
