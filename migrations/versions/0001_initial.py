"""Initial schema: tenants, users, documents and their bytes, chunks, jobs, chat, usage.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from alembic import context, op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _embedding_dim() -> int:
    dim = context.config.attributes.get("embedding_dim")
    if not isinstance(dim, int) or dim <= 0:
        raise RuntimeError("the migration needs the embedding dimension (run `docuchat migrate`)")
    return dim


def upgrade() -> None:
    dim = _embedding_dim()
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute("""
        CREATE TABLE tenants (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            slug text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
            name text NOT NULL,
            active boolean NOT NULL DEFAULT true,
            monthly_token_quota bigint CHECK (monthly_token_quota >= 0),
            created_at timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("""
        CREATE TABLE users (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            email text NOT NULL,
            role text NOT NULL DEFAULT 'member' CHECK (role IN ('member', 'admin')),
            active boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL DEFAULT now(),
            last_login_at timestamptz,
            UNIQUE (tenant_id, email)
        )""")
    op.execute("""
        CREATE TABLE documents (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            uploaded_by uuid REFERENCES users(id) ON DELETE SET NULL,
            filename text NOT NULL,
            size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
            sha256 text NOT NULL,
            status text NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'processing', 'ready', 'failed')),
            page_count integer,
            chunk_count integer NOT NULL DEFAULT 0,
            error text,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (tenant_id, sha256)
        )""")
    op.execute("CREATE INDEX documents_tenant_created ON documents (tenant_id, created_at DESC)")
    op.execute("""
        CREATE TABLE document_blobs (
            document_id uuid PRIMARY KEY REFERENCES documents(id) ON DELETE CASCADE,
            tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            data bytea NOT NULL
        )""")
    op.execute("CREATE INDEX document_blobs_tenant ON document_blobs (tenant_id)")
    op.execute(f"""
        CREATE TABLE chunks (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            document_id uuid NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            ordinal integer NOT NULL,
            text text NOT NULL,
            page_start integer NOT NULL,
            page_end integer NOT NULL CHECK (page_end >= page_start),
            token_count integer NOT NULL,
            embedding vector({dim}) NOT NULL,
            search_vector tsvector GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED,
            UNIQUE (document_id, ordinal)
        )""")
    op.execute("CREATE INDEX chunks_tenant ON chunks (tenant_id)")
    op.execute(
        "CREATE INDEX chunks_embedding_hnsw ON chunks USING hnsw (embedding vector_cosine_ops)"
    )
    op.execute("CREATE INDEX chunks_search_vector ON chunks USING gin (search_vector)")
    op.execute("""
        CREATE TABLE jobs (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            user_id uuid REFERENCES users(id) ON DELETE SET NULL,
            kind text NOT NULL CHECK (kind IN ('ingest', 'chat')),
            status text NOT NULL DEFAULT 'queued'
                CONSTRAINT jobs_status_check
                CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
            document_id uuid REFERENCES documents(id) ON DELETE SET NULL,
            progress jsonb NOT NULL DEFAULT '{}'::jsonb,
            error text,
            created_at timestamptz NOT NULL DEFAULT now(),
            started_at timestamptz,
            finished_at timestamptz
        )""")
    op.execute("CREATE INDEX jobs_tenant_created ON jobs (tenant_id, created_at DESC)")
    op.execute("CREATE INDEX jobs_document ON jobs (document_id)")
    op.execute("""
        CREATE TABLE chat_sessions (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            title text NOT NULL DEFAULT '',
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute(
        "CREATE INDEX chat_sessions_owner ON chat_sessions (tenant_id, user_id, updated_at DESC)"
    )
    op.execute("""
        CREATE TABLE messages (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            session_id uuid NOT NULL REFERENCES chat_sessions(id) ON DELETE CASCADE,
            role text NOT NULL CHECK (role IN ('user', 'assistant')),
            content text NOT NULL,
            status text NOT NULL DEFAULT 'complete'
                CHECK (status IN ('pending', 'complete', 'cancelled', 'failed')),
            citations jsonb NOT NULL DEFAULT '[]'::jsonb,
            model text,
            prompt_tokens integer NOT NULL DEFAULT 0,
            completion_tokens integer NOT NULL DEFAULT 0,
            job_id uuid REFERENCES jobs(id) ON DELETE SET NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )""")
    op.execute("CREATE INDEX messages_tenant ON messages (tenant_id)")
    op.execute("CREATE INDEX messages_session_created ON messages (session_id, created_at)")
    op.execute("""
        CREATE TABLE usage_records (
            id bigserial PRIMARY KEY,
            tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            user_id uuid REFERENCES users(id) ON DELETE SET NULL,
            kind text NOT NULL CHECK (kind IN ('chat', 'embedding')),
            model text NOT NULL,
            prompt_tokens integer NOT NULL DEFAULT 0 CHECK (prompt_tokens >= 0),
            completion_tokens integer NOT NULL DEFAULT 0 CHECK (completion_tokens >= 0),
            created_at timestamptz NOT NULL DEFAULT now()
        )""")
    # The 24 h / 7 day windows scan by tenant (and user) over time.
    op.execute("CREATE INDEX usage_tenant_time ON usage_records (tenant_id, created_at)")
    op.execute(
        "CREATE INDEX usage_tenant_user_time ON usage_records (tenant_id, user_id, created_at)"
    )


def downgrade() -> None:
    for table in (
        "usage_records",
        "messages",
        "chat_sessions",
        "jobs",
        "chunks",
        "document_blobs",
        "documents",
        "users",
        "tenants",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table}")
