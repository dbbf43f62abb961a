"""Jobs whose queue message was lost: found across tenants, requeued a bounded number of times.

A job's queue message carries the job's id as its message id. When Redis loses messages (a
restart without persistence, a failover, a flush), the job row stays queued or running with
no message to drive it. The workers' reaper lists unfinished jobs of every tenant through
`docuchat_unfinished_jobs` (the app role cannot see across tenants otherwise; the function
reveals ids, kinds and states, nothing else) and requeues the ones whose message is gone,
counting each requeue in `jobs.requeues`. `jobs.updated_at` says when a job last changed
hands, so a job that was just queued, or is still within its time limit on a worker, is left
alone.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

APP_ROLE = "docuchat_app"


def upgrade() -> None:
    op.execute("ALTER TABLE jobs ADD COLUMN requeues integer NOT NULL DEFAULT 0")
    # When the job last changed hands: queued, claimed by a worker, sent back for a retry.
    op.execute("ALTER TABLE jobs ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now()")
    op.execute(
        "CREATE INDEX jobs_unfinished ON jobs (updated_at) WHERE status IN ('queued', 'running')"
    )
    op.execute("""
        CREATE FUNCTION docuchat_unfinished_jobs(older_than interval)
        RETURNS TABLE (id uuid, tenant_id uuid, kind text, status text, idle interval)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT id, tenant_id, kind, status, now() - updated_at FROM jobs
             WHERE status IN ('queued', 'running') AND updated_at < now() - older_than
             ORDER BY updated_at
             LIMIT 1000
        $$""")
    op.execute("REVOKE ALL ON FUNCTION docuchat_unfinished_jobs(interval) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION docuchat_unfinished_jobs(interval) TO {APP_ROLE}")


def downgrade() -> None:
    op.execute("DROP FUNCTION docuchat_unfinished_jobs(interval)")
    op.execute("DROP INDEX jobs_unfinished")
    op.execute("ALTER TABLE jobs DROP COLUMN updated_at")
    op.execute("ALTER TABLE jobs DROP COLUMN requeues")
