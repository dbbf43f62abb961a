"""Full text matches across the zero-width non-joiner; usage records say when counts are
estimates.

- `chunks.search_vector` drops the zero-width non-joiner (U+200C) as well as folding digits,
  so "تک‌لایو" as typed matches "تکلایو" as many PDFs store it (the query is folded the same
  way, `pipeline/lexicon.py`).
- `usage_records.estimated`: true when the provider reported no usage and the tokens were
  counted with tiktoken instead. The covering indexes of the usage windows include it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

DIGITS_FROM = "۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩"
DIGITS_TO = "01234567890123456789"
ZWNJ = "\u200c"
MEASURES = "kind, model, prompt_tokens, completion_tokens"


def _search_vector(expression: str) -> None:
    op.execute("ALTER TABLE chunks DROP COLUMN search_vector")
    op.execute(
        f"ALTER TABLE chunks ADD COLUMN search_vector tsvector "
        f"GENERATED ALWAYS AS ({expression}) STORED"
    )
    op.execute("CREATE INDEX chunks_search_vector ON chunks USING gin (search_vector)")


def _usage_indexes(measures: str) -> None:
    op.execute("DROP INDEX usage_tenant_time")
    op.execute("DROP INDEX usage_tenant_user_time")
    op.execute(
        "CREATE INDEX usage_tenant_time ON usage_records (tenant_id, created_at) "
        f"INCLUDE (user_id, {measures})"
    )
    op.execute(
        "CREATE INDEX usage_tenant_user_time ON usage_records (tenant_id, user_id, created_at) "
        f"INCLUDE ({measures})"
    )


def upgrade() -> None:
    # translate() deletes the characters of its second argument that have no counterpart.
    _search_vector(f"to_tsvector('simple', translate(text, '{DIGITS_FROM}{ZWNJ}', '{DIGITS_TO}'))")
    op.execute("ALTER TABLE usage_records ADD COLUMN estimated boolean NOT NULL DEFAULT false")
    _usage_indexes(f"{MEASURES}, estimated")


def downgrade() -> None:
    _usage_indexes(MEASURES)
    op.execute("ALTER TABLE usage_records DROP COLUMN estimated")
    _search_vector(f"to_tsvector('simple', translate(text, '{DIGITS_FROM}', '{DIGITS_TO}'))")
