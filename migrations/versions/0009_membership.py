"""Membership: who may sign in to a tenant is the tenant's decision.

- `tenants.signup_policy`: `invite` (only members sign in; the default, and what every
  existing tenant gets) or `open` (any address signs up by signing in).
- `tenants.allowed_domains`: addresses of these domains sign up by themselves, whatever the
  policy.
- `users.status` replaces `users.active`: `invited` (not signed in yet), `active`, or
  `removed` (kept, so their documents, sessions and usage stay with the tenant; a disabled
  account was a removed one).
- `users.invited_by`: the admin who invited them, if any.
- `users.token_version`: access tokens carry it; removing a member raises it, so tokens issued
  before stay dead even if the address is invited again.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        ALTER TABLE tenants
            ADD COLUMN signup_policy text NOT NULL DEFAULT 'invite'
                CHECK (signup_policy IN ('invite', 'open')),
            ADD COLUMN allowed_domains text[] NOT NULL DEFAULT '{}'""")
    op.execute("""
        ALTER TABLE users
            ADD COLUMN status text NOT NULL DEFAULT 'active'
                CHECK (status IN ('invited', 'active', 'removed')),
            ADD COLUMN invited_by uuid REFERENCES users(id) ON DELETE SET NULL,
            ADD COLUMN token_version integer NOT NULL DEFAULT 0""")
    op.execute("UPDATE users SET status = 'removed' WHERE NOT active")
    op.execute("ALTER TABLE users DROP COLUMN active")
    # Member lists page by (created_at, id) within a tenant; the last-admin rule counts admins.
    op.execute("CREATE INDEX users_tenant_created ON users (tenant_id, created_at DESC, id DESC)")
    op.execute(
        "CREATE INDEX users_tenant_admins ON users (tenant_id) "
        "WHERE role = 'admin' AND status = 'active'"
    )


def downgrade() -> None:
    op.execute("DROP INDEX users_tenant_admins")
    op.execute("DROP INDEX users_tenant_created")
    op.execute("ALTER TABLE users ADD COLUMN active boolean NOT NULL DEFAULT true")
    op.execute("UPDATE users SET active = (status <> 'removed')")
    op.execute(
        "ALTER TABLE users DROP COLUMN token_version, DROP COLUMN invited_by, DROP COLUMN status"
    )
    op.execute("ALTER TABLE tenants DROP COLUMN allowed_domains, DROP COLUMN signup_policy")
