"""Job changes are announced: NOTIFY docuchat_jobs with the job's id whenever its status or
progress changes, whoever changes it (a worker, the reaper, a cancel). The API's job event
streams LISTEN instead of polling (`db/job_watch.py`). The notice holds the id only: readers
fetch the job through row-level security.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE FUNCTION docuchat_announce_job() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('docuchat_jobs', NEW.id::text);
            RETURN NEW;
        END
        $$""")
    op.execute("""
        CREATE TRIGGER jobs_announce AFTER UPDATE ON jobs
        FOR EACH ROW
        WHEN (OLD.status IS DISTINCT FROM NEW.status
              OR OLD.progress IS DISTINCT FROM NEW.progress)
        EXECUTE FUNCTION docuchat_announce_job()""")


def downgrade() -> None:
    op.execute("DROP TRIGGER jobs_announce ON jobs")
    op.execute("DROP FUNCTION docuchat_announce_job()")
