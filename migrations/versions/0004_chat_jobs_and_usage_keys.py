"""Chat: a job's options, messages tied to their job, usage recorded at most once per job.

- `jobs.options` holds what a chat job was asked (document ids); the question itself is the
  user's message, which points at the job like the answer does.
- One user and one assistant message per chat job, and one usage record per job: a retried
  job can update its answer but never save it, or count its tokens, twice.
- `messages.created_at` uses clock_timestamp(), so a question and its answer, written in one
  transaction, still sort in the order they were made.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE jobs ADD COLUMN options jsonb NOT NULL DEFAULT '{}'::jsonb")
    op.execute("CREATE UNIQUE INDEX messages_job_role ON messages (job_id, role)")
    op.execute("ALTER TABLE messages ALTER COLUMN created_at SET DEFAULT clock_timestamp()")
    op.execute(
        "ALTER TABLE usage_records ADD COLUMN job_id uuid REFERENCES jobs(id) ON DELETE SET NULL"
    )
    op.execute("CREATE UNIQUE INDEX usage_records_job ON usage_records (job_id)")


def downgrade() -> None:
    op.execute("DROP INDEX usage_records_job")
    op.execute("ALTER TABLE usage_records DROP COLUMN job_id")
    op.execute("ALTER TABLE messages ALTER COLUMN created_at SET DEFAULT now()")
    op.execute("DROP INDEX messages_job_role")
    op.execute("ALTER TABLE jobs DROP COLUMN options")
