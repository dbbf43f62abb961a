"""Usage: one record per job and kind.

A chat job now counts two things: the answer (kind `chat`) and the embedding of its question
(kind `embedding`). The unique key becomes (job_id, kind), so a retried job still counts each
of them once.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP INDEX usage_records_job")
    op.execute("CREATE UNIQUE INDEX usage_records_job_kind ON usage_records (job_id, kind)")


def downgrade() -> None:
    op.execute("DROP INDEX usage_records_job_kind")
    # One record per job again: a question's embedding stays counted, no longer tied to its job.
    op.execute(
        "UPDATE usage_records u SET job_id = NULL WHERE kind = 'embedding' AND EXISTS "
        "(SELECT 1 FROM usage_records c WHERE c.job_id = u.job_id AND c.kind = 'chat')"
    )
    op.execute("CREATE UNIQUE INDEX usage_records_job ON usage_records (job_id)")
