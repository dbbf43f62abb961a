"""What was read on each page, and how: `document_pages` keeps every page's (or section's)
text as indexed, where it came from (the PDF's text layer, OCR, a section of a format without
pages, or skipped), whether it is flagged as possibly wrong, and why. `GET /v1/files/{id}`
sums it up; `GET /v1/files/{id}/pages/{n}` shows one page. `chunks.section` names the heading
a chunk of a Word, HTML or Markdown file falls under, for citations.

Documents ingested before this have no page rows until they are ingested again.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

APP_ROLE = "docuchat_app"
CURRENT_TENANT = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"


def upgrade() -> None:
    op.execute("""
        CREATE TABLE document_pages (
            document_id uuid NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            number integer NOT NULL CHECK (number >= 1),
            tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            source text NOT NULL CHECK (source IN ('text_layer', 'ocr', 'section', 'skipped')),
            flagged boolean NOT NULL DEFAULT false,
            note text,
            section text,
            text text NOT NULL,
            PRIMARY KEY (document_id, number)
        )""")
    op.execute("ALTER TABLE document_pages ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON document_pages TO {APP_ROLE} "
        f"USING (tenant_id = {CURRENT_TENANT}) WITH CHECK (tenant_id = {CURRENT_TENANT})"
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON document_pages TO {APP_ROLE}")
    op.execute("ALTER TABLE chunks ADD COLUMN section text")


def downgrade() -> None:
    op.execute("ALTER TABLE chunks DROP COLUMN section")
    op.execute("DROP TABLE document_pages")
