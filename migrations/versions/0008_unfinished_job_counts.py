"""Unfinished jobs counted by kind and status across tenants, for /metrics.

The app role sees one tenant at a time; the metrics are the fleet's. The function returns
counts only, nothing that names a tenant or a job.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

APP_ROLE = "docuchat_app"


def upgrade() -> None:
    op.execute("""
        CREATE FUNCTION docuchat_unfinished_job_counts()
        RETURNS TABLE (kind text, status text, jobs bigint)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT kind, status, count(*) FROM jobs
             WHERE status IN ('queued', 'running')
             GROUP BY kind, status
        $$""")
    op.execute("REVOKE ALL ON FUNCTION docuchat_unfinished_job_counts() FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION docuchat_unfinished_job_counts() TO {APP_ROLE}")


def downgrade() -> None:
    op.execute("DROP FUNCTION docuchat_unfinished_job_counts()")
