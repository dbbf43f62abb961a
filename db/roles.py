"""The app's own login: a role that owns nothing, is no superuser and cannot become one.

Row-level security binds the role `docuchat_app` (migration 0002). Switching to it from a
connection of the tables' owner or of a superuser binds nothing, since one `SET ROLE`
undoes it; so the API and the workers sign in as a login role of their own (the user of
DATABASE_URL): `docuchat_app` itself, or a login that is a member of it. `docuchat migrate`,
signed in as the owner, makes that login from DATABASE_URL (name and password), and the API
refuses to start on a login that could act as the owner or a superuser.
"""

from __future__ import annotations

import re

from psycopg import sql
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url

from core.errors import ConfigurationError
from db.engine import APP_ROLE

_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# What the signed-in login could become: a superuser, or the owner of any of our tables.
POWERS_SQL = text("""
    SELECT session_user AS login,
           (SELECT string_agg(DISTINCT s.rolname, ', ') FROM pg_roles s
             WHERE s.rolsuper AND pg_has_role(session_user, s.oid, 'MEMBER')) AS superusers,
           (SELECT string_agg(DISTINCT t.tableowner, ', ') FROM pg_tables t
             WHERE t.schemaname = 'public'
               AND pg_has_role(session_user, t.tableowner, 'MEMBER')) AS owners
""")


# A role by name: whether it is a superuser, and the table owners it could act as.
ROLE_SQL = text("""
    SELECT r.rolsuper AS superuser,
           (SELECT string_agg(DISTINCT t.tableowner, ', ') FROM pg_tables t
             WHERE t.schemaname = 'public' AND pg_has_role(r.oid, t.tableowner, 'MEMBER'))
             AS owners
      FROM pg_roles r WHERE r.rolname = :n
""")


def app_login(app_url: str) -> tuple[str, str | None]:
    """The user and password DATABASE_URL signs in with."""
    url = make_url(app_url)
    login = url.username or ""
    if not _ROLE_NAME.fullmatch(login):
        raise ConfigurationError(
            f"DATABASE_URL must name the app's login role (lower-case letters, digits and _), "
            f"not {login!r}: for example postgresql://{APP_ROLE}:PASSWORD@host/docuchat"
        )
    return login, url.password


def ensure_app_login(owner: Engine, app_url: str) -> str:
    """Make DATABASE_URL's user a login that works as the app role: created with its
    password if missing, given the password if one is set, a member of `docuchat_app`.
    Refuses a user that could act as the owner. Returns the login's name."""
    login, password = app_login(app_url)
    with owner.begin() as conn:
        # Judged before anything is changed: an owner or a superuser is refused, not demoted.
        found = conn.execute(ROLE_SQL, {"n": login}).first()
        if found is not None and found.superuser:
            raise ConfigurationError(_unsafe(login, "is a superuser"))
        if found is not None and found.owners:
            raise ConfigurationError(
                _unsafe(login, f"can act as the tables' owner ({found.owners})")
            )
        statement = sql.SQL("{verb} ROLE {login} {options}").format(
            verb=sql.SQL("ALTER" if found is not None else "CREATE"),
            login=sql.Identifier(login),
            options=sql.SQL("LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS"),
        )
        if password is not None:
            statement += sql.SQL(" PASSWORD {}").format(sql.Literal(password))
        if login != APP_ROLE:
            statement += sql.SQL("; GRANT {app} TO {login}").format(
                app=sql.Identifier(APP_ROLE), login=sql.Identifier(login)
            )
        raw = conn.connection.driver_connection
        assert raw is not None
        raw.execute(statement)
    return login


def check_app_login(conn: Connection) -> None:
    """Raise ConfigurationError unless this connection's login owns nothing and can become
    neither the owner nor a superuser."""
    row = conn.execute(POWERS_SQL).one()
    if row.superusers:
        raise ConfigurationError(
            _unsafe(row.login, f"is or can become a superuser ({row.superusers})")
        )
    if row.owners:
        raise ConfigurationError(_unsafe(row.login, f"can act as the tables' owner ({row.owners})"))


def _unsafe(login: str, why: str) -> str:
    return (
        f"DATABASE_URL signs in as {login!r}, which {why}: one SET ROLE would undo row-level "
        "security. Point DATABASE_URL at the app's own login (for example "
        f"postgresql://{APP_ROLE}:PASSWORD@host/docuchat) and run `docuchat migrate` with "
        "DATABASE_OWNER_URL set to the owner's, which makes that login"
    )
