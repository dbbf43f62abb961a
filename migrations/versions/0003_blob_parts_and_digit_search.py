"""Store PDF bytes in 1 MiB parts; full-text search folds Persian and Arabic-Indic digits.

Parts let the API write an upload and a worker read it back without holding the whole file in
memory. The search column now indexes digits as ASCII, so ۱۹۷۸, ١٩٧٨ and 1978 match each other.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

DIGITS_FROM = "۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩"
DIGITS_TO = "01234567890123456789"


def _search_vector(expression: str) -> None:
    op.execute("ALTER TABLE chunks DROP COLUMN search_vector")
    op.execute(
        f"ALTER TABLE chunks ADD COLUMN search_vector tsvector "
        f"GENERATED ALWAYS AS ({expression}) STORED"
    )
    op.execute("CREATE INDEX chunks_search_vector ON chunks USING gin (search_vector)")


def upgrade() -> None:
    op.execute("ALTER TABLE document_blobs ADD COLUMN part integer NOT NULL DEFAULT 0")
    op.execute("ALTER TABLE document_blobs ALTER COLUMN part DROP DEFAULT")
    op.execute("ALTER TABLE document_blobs ADD CONSTRAINT document_blobs_part CHECK (part >= 0)")
    op.execute("ALTER TABLE document_blobs DROP CONSTRAINT document_blobs_pkey")
    op.execute("ALTER TABLE document_blobs ADD PRIMARY KEY (document_id, part)")
    _search_vector(f"to_tsvector('simple', translate(text, '{DIGITS_FROM}', '{DIGITS_TO}'))")


def downgrade() -> None:
    _search_vector("to_tsvector('simple', text)")
    # Glue each document's parts back into one row before the part column goes.
    op.execute("""
        UPDATE document_blobs AS first SET data = whole.data
        FROM (SELECT document_id, string_agg(data, ''::bytea ORDER BY part) AS data
              FROM document_blobs GROUP BY document_id) AS whole
        WHERE first.document_id = whole.document_id AND first.part = 0""")
    op.execute("DELETE FROM document_blobs WHERE part > 0")
    op.execute("ALTER TABLE document_blobs DROP CONSTRAINT document_blobs_pkey")
    op.execute("ALTER TABLE document_blobs DROP COLUMN part")
    op.execute("ALTER TABLE document_blobs ADD PRIMARY KEY (document_id)")
