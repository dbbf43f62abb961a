"""Fair ingestion: documents read in page batches, claimed across tenants in turn.

- `ingest_batches`: one row per batch of a document's pages; a batch is claimed by one
  worker (`claimed_by`: the Dramatiq broker id whose heartbeat says it lives), done once, and
  stores its own chunks. `not_before` holds a batch back after a failure (backoff).
- `ingest_turns`: when each tenant last had a batch claimed: the claim goes to the tenant
  served longest ago, so no tenant waits behind another's queue.
- `docuchat_claim_ingest_batch(worker, tenant_cap)`: the one fair claim, across tenants (a
  SECURITY DEFINER function: the app role sees one tenant at a time), serialised by an
  advisory lock; it reveals only ids.
- `jobs.claimed_by`: the worker running a job, so the reaper can requeue the jobs of a
  worker whose heartbeat stopped.
- `documents.skipped_pages`: pages left out, with the reason (a page over its CPU budget).
- `docuchat_unfinished_jobs_by_tenant()`, `docuchat_open_batches_by_tenant()`: unfinished
  jobs and open batches per tenant id and state, for /metrics.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

APP_ROLE = "docuchat_app"
LEGACY_BATCH_PAGES = 32
UNPLANNED = "its page count was never recorded; upload it again"
CURRENT_TENANT = "NULLIF(current_setting('app.tenant_id', true), '')::uuid"


def upgrade() -> None:
    op.execute("""
        CREATE TABLE ingest_batches (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            tenant_id uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
            job_id uuid NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
            document_id uuid NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
            ordinal integer NOT NULL,
            first_page integer NOT NULL,
            last_page integer NOT NULL CHECK (last_page >= first_page),
            status text NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
            attempts integer NOT NULL DEFAULT 0,
            claimed_by text,
            claimed_at timestamptz,
            not_before timestamptz,
            pages_done integer NOT NULL DEFAULT 0,
            chunks_done integer NOT NULL DEFAULT 0,
            chunks_total integer,
            letters integer NOT NULL DEFAULT 0,
            embedding_tokens integer NOT NULL DEFAULT 0,
            skipped jsonb NOT NULL DEFAULT '[]'::jsonb,
            error text,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (job_id, ordinal)
        )""")
    op.execute(
        "CREATE INDEX ingest_batches_open ON ingest_batches (tenant_id, status) "
        "WHERE status IN ('queued', 'running')"
    )
    op.execute("CREATE INDEX ingest_batches_document ON ingest_batches (document_id)")
    op.execute("ALTER TABLE ingest_batches ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON ingest_batches TO {APP_ROLE} "
        f"USING (tenant_id = {CURRENT_TENANT}) WITH CHECK (tenant_id = {CURRENT_TENANT})"
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ingest_batches TO {APP_ROLE}")
    op.execute("""
        CREATE TABLE ingest_turns (
            tenant_id uuid PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
            served_at timestamptz NOT NULL
        )""")
    # Read and written only by the claim (SECURITY DEFINER); the app's login gets no grant,
    # and row-level security holds should one ever be given.
    op.execute("ALTER TABLE ingest_turns ENABLE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON ingest_turns TO {APP_ROLE} "
        f"USING (tenant_id = {CURRENT_TENANT}) WITH CHECK (tenant_id = {CURRENT_TENANT})"
    )
    op.execute("ALTER TABLE jobs ADD COLUMN claimed_by text")
    # Unfinished ingestions of the old kind (one message per document) go on in batches; the
    # workers' reaper sends the turns that claim them. Their old messages name an actor that
    # is gone, and end in Dramatiq's dead-letter queue.
    op.execute(
        sa.text("""
        INSERT INTO ingest_batches (tenant_id, job_id, document_id, ordinal, first_page,
                                    last_page)
        SELECT j.tenant_id, j.id, j.document_id, (s.first - 1) / :pages, s.first,
               least(s.first + :pages - 1, d.page_count)
          FROM jobs j
          JOIN documents d ON d.id = j.document_id
         CROSS JOIN LATERAL generate_series(1, d.page_count, :pages) AS s(first)
         WHERE j.kind = 'ingest' AND j.status IN ('queued', 'running')
           AND d.page_count IS NOT NULL""").bindparams(pages=LEGACY_BATCH_PAGES)
    )
    op.execute("""
        UPDATE jobs SET status = 'queued', updated_at = now()
         WHERE kind = 'ingest' AND status = 'running'""")
    op.execute(
        sa.text("""
        WITH unplanned AS (
            UPDATE jobs SET status = 'failed', error = :reason, finished_at = now(),
                   updated_at = now()
             WHERE kind = 'ingest' AND status IN ('queued', 'running')
               AND NOT EXISTS (SELECT 1 FROM ingest_batches b WHERE b.job_id = jobs.id)
            RETURNING document_id)
        UPDATE documents SET status = 'failed', error = :reason, updated_at = now()
         WHERE id IN (SELECT document_id FROM unplanned)""").bindparams(reason=UNPLANNED)
    )
    op.execute("ALTER TABLE documents ADD COLUMN skipped_pages jsonb NOT NULL DEFAULT '[]'")
    op.execute("""
        CREATE FUNCTION docuchat_claim_ingest_batch(worker text, tenant_cap integer)
        RETURNS TABLE (batch_id uuid, tenant_id uuid, job_id uuid)
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
        #variable_conflict use_column
        DECLARE
            chosen record;
        BEGIN
            -- One claim at a time across the fleet: the turns and the caps stay exact.
            PERFORM pg_advisory_xact_lock(7226307133432099121);
            SELECT b.id, b.tenant_id, b.job_id INTO chosen
              FROM (
                SELECT DISTINCT ON (q.tenant_id) q.id, q.tenant_id, q.job_id, j.created_at
                  FROM ingest_batches q
                  JOIN jobs j ON j.id = q.job_id AND j.status IN ('queued', 'running')
                 WHERE q.status = 'queued'
                   AND (q.not_before IS NULL OR q.not_before <= now())
                   AND (SELECT count(*) FROM ingest_batches r
                         WHERE r.tenant_id = q.tenant_id AND r.status = 'running') < tenant_cap
                 ORDER BY q.tenant_id, j.created_at, q.job_id, q.ordinal
              ) AS b
              LEFT JOIN ingest_turns t ON t.tenant_id = b.tenant_id
             ORDER BY t.served_at NULLS FIRST, b.created_at
             LIMIT 1;
            IF NOT FOUND THEN
                RETURN;
            END IF;
            -- The job before its batch: the order every writer locks them in.
            UPDATE jobs
               SET status = 'running', started_at = coalesce(started_at, now()),
                   claimed_by = worker, updated_at = now()
             WHERE id = chosen.job_id AND status = 'queued';
            UPDATE ingest_batches
               SET status = 'running', claimed_by = worker, claimed_at = now(),
                   attempts = attempts + 1, updated_at = now()
             WHERE id = chosen.id AND status = 'queued';
            IF NOT FOUND THEN  -- cancelled since the look: nothing claimed this turn
                RETURN;
            END IF;
            INSERT INTO ingest_turns (tenant_id, served_at) VALUES (chosen.tenant_id, now())
                ON CONFLICT (tenant_id) DO UPDATE SET served_at = excluded.served_at;
            batch_id := chosen.id;
            tenant_id := chosen.tenant_id;
            job_id := chosen.job_id;
            RETURN NEXT;
        END
        $$""")
    op.execute("REVOKE ALL ON FUNCTION docuchat_claim_ingest_batch(text, integer) FROM PUBLIC")
    op.execute(
        f"GRANT EXECUTE ON FUNCTION docuchat_claim_ingest_batch(text, integer) TO {APP_ROLE}"
    )
    # What the reaper and the fleet's wake-ups need to see across tenants: ids and counts.
    op.execute("""
        CREATE FUNCTION docuchat_open_batches()
        RETURNS TABLE (id uuid, tenant_id uuid, job_id uuid, status text, claimed_by text,
                       claimable boolean, idle interval)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT b.id, b.tenant_id, b.job_id, b.status, b.claimed_by,
                   b.status = 'queued' AND (b.not_before IS NULL OR b.not_before <= now()),
                   now() - b.updated_at
              FROM ingest_batches b JOIN jobs j ON j.id = b.job_id
             WHERE b.status IN ('queued', 'running') AND j.status IN ('queued', 'running')
             LIMIT 10000
        $$""")
    op.execute("REVOKE ALL ON FUNCTION docuchat_open_batches() FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION docuchat_open_batches() TO {APP_ROLE}")
    op.execute("""
        CREATE FUNCTION docuchat_unfinished_jobs_by_tenant()
        RETURNS TABLE (kind text, tenant_id uuid, status text, jobs bigint)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT kind, tenant_id, status, count(*) FROM jobs
             WHERE status IN ('queued', 'running')
             GROUP BY kind, tenant_id, status
        $$""")
    op.execute("REVOKE ALL ON FUNCTION docuchat_unfinished_jobs_by_tenant() FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION docuchat_unfinished_jobs_by_tenant() TO {APP_ROLE}")
    op.execute("""
        CREATE FUNCTION docuchat_open_batches_by_tenant()
        RETURNS TABLE (tenant_id uuid, status text, batches bigint)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT tenant_id, status, count(*) FROM ingest_batches
             WHERE status IN ('queued', 'running')
             GROUP BY tenant_id, status
        $$""")
    op.execute("REVOKE ALL ON FUNCTION docuchat_open_batches_by_tenant() FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION docuchat_open_batches_by_tenant() TO {APP_ROLE}")
    # The reaper's view of unfinished jobs now says who claimed each.
    op.execute("DROP FUNCTION docuchat_unfinished_jobs(interval)")
    op.execute("""
        CREATE FUNCTION docuchat_unfinished_jobs(older_than interval)
        RETURNS TABLE (id uuid, tenant_id uuid, kind text, status text, idle interval,
                       claimed_by text)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
            SELECT id, tenant_id, kind, status, now() - updated_at, claimed_by FROM jobs
             WHERE status IN ('queued', 'running') AND updated_at < now() - older_than
             ORDER BY updated_at
             LIMIT 1000
        $$""")
    op.execute("REVOKE ALL ON FUNCTION docuchat_unfinished_jobs(interval) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION docuchat_unfinished_jobs(interval) TO {APP_ROLE}")


def downgrade() -> None:
    op.execute("DROP FUNCTION docuchat_unfinished_jobs(interval)")
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
    op.execute("DROP FUNCTION docuchat_open_batches_by_tenant()")
    op.execute("DROP FUNCTION docuchat_unfinished_jobs_by_tenant()")
    op.execute("DROP FUNCTION docuchat_open_batches()")
    op.execute("DROP FUNCTION docuchat_claim_ingest_batch(text, integer)")
    op.execute("ALTER TABLE documents DROP COLUMN skipped_pages")
    op.execute("ALTER TABLE jobs DROP COLUMN claimed_by")
    op.execute("DROP TABLE ingest_turns")
    op.execute("DROP TABLE ingest_batches")
