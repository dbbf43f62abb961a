"""A fair worker fleet, through the real API and real workers: ingestion is claimed across
tenants in turn under a per-tenant cap, so one tenant's long queue never holds up another's
small upload; answers run in workers of their own, so a question never waits for ingestion;
a page past its CPU budget is skipped, with the reason, not allowed to hold a slot.

Each test is a fleet of its own (a database and a Redis of its own): the workers of one
database serve every tenant in it.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import timedelta

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from bootstrap import bootstrap
from db.batches import claim_batch, requeue_batch
from db.engine import unit_of_work
from standins.chat_client import ask, read_stream
from standins.documents import costly_pdf, english_pdf, filler
from tests.ingest_helpers import ingest, tenant_client, upload, wait_for_job
from tests.stack import LiveServer, OwnDatabase, Services, WorkerProcess

SKIP_REASON = "reading it took more than the 1 s of CPU a page may take (PDF_PAGE_CPU_SECONDS)"


def _slug_batches(engine: Engine, slug: str) -> Counter[str]:
    """How many of a tenant's batches are in each state."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT b.status, count(*) FROM ingest_batches b JOIN tenants t "
                "ON t.id = b.tenant_id WHERE t.slug = :s GROUP BY b.status"
            ),
            {"s": slug},
        ).all()
    return Counter({status: int(count) for status, count in rows})


def test_the_claim_serves_tenants_in_turn_under_their_cap(
    services: Services, own_database: OwnDatabase, redis_database: str
) -> None:
    """No worker: the claim itself, called as a worker calls it, on batches made by uploads.
    The tenant served longest ago goes first, whatever the order of the uploads; a tenant at
    its cap is passed over; a batch held back after a failure waits for its backoff."""
    settings = own_database.settings(services, REDIS_URL=redis_database, INGEST_BATCH_PAGES="1")
    parts = bootstrap(settings)
    try:
        with LiveServer(settings) as server:
            tenants: dict[str, str] = {}
            for name, documents, pages in (("a", 3, 2), ("b", 1, 1), ("c", 1, 2)):
                with tenant_client(own_database.engine, settings, server.url) as client:
                    tenants[client.headers["X-Tenant-ID"]] = name
                    for n in range(documents):
                        body = english_pdf([filler(10 * n + p, 2) for p in range(pages)])
                        assert upload(client, body, f"{name}{n}.pdf").status_code == 202
        ids = _tenant_ids(own_database.engine, tenants)

        def claim(cap: int) -> str | None:
            with unit_of_work(parts.engine) as session:
                claimed = claim_batch(session, "worker-1", cap)
            return ids[claimed.tenant_id] if claimed else None

        capped = [claim(1) for _ in range(4)]
        with own_database.engine.begin() as conn:  # every batch back in the queue
            conn.execute(text("UPDATE ingest_batches SET status = 'queued', claimed_by = NULL"))
            conn.execute(text("DELETE FROM ingest_turns"))
        in_turn = [claim(100) for _ in range(10)]
        with unit_of_work(parts.engine) as session:
            held = claim_batch(session, "worker-1", 100)
        assert held is None
        with own_database.engine.begin() as conn:
            conn.execute(text("UPDATE ingest_batches SET status = 'running'"))
            first_of_b = conn.execute(
                text("SELECT id FROM ingest_batches WHERE tenant_id = :t ORDER BY ordinal LIMIT 1"),
                {"t": next(t for t, n in ids.items() if n == "b")},
            ).scalar_one()
        b_id = next(t for t, n in ids.items() if n == "b")
        with unit_of_work(parts.engine, b_id) as session:
            requeue_batch(session, first_of_b, "a test failure", timedelta(hours=1))
        with unit_of_work(parts.engine) as session:
            backing_off = claim_batch(session, "worker-1", 100)
    finally:
        parts.close()
    assert capped == ["a", "b", "c", None]  # one each, then every tenant is at its cap
    # a uploaded first and most (6 batches), yet b and c are served between a's batches.
    assert in_turn == ["a", "b", "c", "a", "c", "a", "a", "a", "a", None]
    assert backing_off is None


def _tenant_ids(engine: Engine, names: dict[str, str]) -> dict[uuid.UUID, str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, slug FROM tenants WHERE slug = ANY(:s)"), {"s": list(names)}
        ).all()
    return {tenant_id: names[slug] for tenant_id, slug in rows}


def test_a_small_upload_is_ready_while_another_tenant_s_long_queue_still_waits(
    services: Services, own_database: OwnDatabase, redis_database: str
) -> None:
    """Tenant A queues six documents (eighteen batches) before tenant B sends one small
    file: B's is ready while most of A's batches are still waiting, and A's all finish."""
    engine = own_database.engine
    settings = own_database.settings(
        services,
        REDIS_URL=redis_database,
        INGEST_BATCH_PAGES="2",
        TENANT_INGEST_CONCURRENCY="1",
        RATE_LIMIT_PER_MINUTE="100000",
    )
    flood = [
        costly_pdf([(f"Flood {d} page {p}. " + filler(d * 10 + p, 2), 2_500_000) for p in range(6)])
        for d in range(6)
    ]
    with (
        LiveServer(settings) as server,
        tenant_client(engine, settings, server.url) as a,
        tenant_client(engine, settings, server.url) as b,
        WorkerProcess(settings, threads=2),
    ):
        a_jobs = []
        for n, data in enumerate(flood):
            response = upload(a, data, f"flood-{n}.pdf")
            assert response.status_code == 202, response.text
            a_jobs.append(response.json()["job"]["id"])
        small = upload(b, english_pdf(["The small report. " + filler(99, 4), filler(98, 4)]))
        assert small.status_code == 202, small.text
        b_job = wait_for_job(b, small.json()["job"]["id"])
        a_then = _slug_batches(engine, a.headers["X-Tenant-ID"])
        a_finished = [wait_for_job(a, job_id, timeout=180) for job_id in a_jobs]
    assert b_job["status"] == "succeeded", b_job
    assert sum(a_then.values()) == 18
    assert a_then["done"] <= 6, a_then  # FIFO would have run all eighteen first
    assert a_then["queued"] >= 11, a_then  # most of A's queue still waiting
    assert a_then["running"] <= 1  # A's cap
    assert [job["status"] for job in a_finished] == ["succeeded"] * 6


def test_a_question_is_answered_while_every_ingest_slot_reads_costly_pages(
    services: Services, own_database: OwnDatabase, redis_database: str
) -> None:
    """Both ingest slots busy with pages that each want seconds of CPU: a question is
    answered at once by the chat worker. Each costly page is cut off at its budget and
    skipped, with the reason; a document whose every page is skipped fails saying so."""
    engine = own_database.engine
    settings = own_database.settings(
        services,
        REDIS_URL=redis_database,
        PDF_PAGE_CPU_SECONDS="1",
        INGEST_BATCH_PAGES="4",
        TENANT_INGEST_CONCURRENCY="2",
        RATE_LIMIT_PER_MINUTE="100000",
    )
    costly = 40_000_000  # about three seconds of CPU a page, unbudgeted
    mixed = costly_pdf([("Page one is plain text. " + filler(1, 3), 0), ("", costly), ("", costly),
                        (filler(2, 3), 0)])  # fmt: skip
    heavy = costly_pdf([("", costly)] * 4)
    with (
        LiveServer(settings) as server,
        tenant_client(engine, settings, server.url) as a,
        tenant_client(engine, settings, server.url) as c,
        WorkerProcess(settings, threads=2, queues=("ingest",)),
        WorkerProcess(settings, threads=2, queues=("chat",)),
    ):
        ingest(c, english_pdf(["The copper lantern hangs in the old harbour. " + filler(3, 4)]))
        jobs = [upload(a, data, name).json()["job"]["id"] for data, name in
                ((mixed, "mixed.pdf"), (heavy, "heavy.pdf"))]  # fmt: skip
        deadline = time.monotonic() + 60
        while _slug_batches(engine, a.headers["X-Tenant-ID"])["running"] < 2:
            assert time.monotonic() < deadline, "the ingest slots never filled"
            time.sleep(0.05)
        answer = read_stream(c, ask(c, "Where does the copper lantern hang?")["stream_url"])
        during = [a.get(f"/v1/jobs/{job_id}").json()["status"] for job_id in jobs]
        mixed_job, heavy_job = (wait_for_job(a, job_id, timeout=120) for job_id in jobs)
        mixed_document = a.get(f"/v1/files/{mixed_job['document_id']}").json()
        heavy_document = a.get(f"/v1/files/{heavy_job['document_id']}").json()
    assert answer.names[-1] == "end" and "harbour" in answer.text.lower()
    assert "running" in during  # the answer did not wait for the reading
    assert mixed_job["status"] == "succeeded", mixed_job
    assert mixed_document["status"] == "ready" and mixed_document["pages"] == 4
    assert mixed_document["skipped_pages"] == [
        {"page": 2, "reason": SKIP_REASON},
        {"page": 3, "reason": SKIP_REASON},
    ]
    assert heavy_job["status"] == "failed"
    assert heavy_job["error"] == heavy_document["error"] == f"every page was skipped: {SKIP_REASON}"


def test_metrics_show_who_waits_and_who_runs_by_tenant_id(
    services: Services, own_database: OwnDatabase, redis_database: str
) -> None:
    """No worker: the queued work shows per queue and tenant id, for sizing the fleet."""
    settings = own_database.settings(services, REDIS_URL=redis_database, INGEST_BATCH_PAGES="1")
    with (
        LiveServer(settings) as server,
        tenant_client(own_database.engine, settings, server.url) as client,
    ):
        upload(client, english_pdf([filler(1, 2), filler(2, 2), filler(3, 2)]))
        ask(client, "Anyone?")
        tenant = client.get("/v1/me").json()["tenant"]["id"]
        body = httpx.get(f"{server.url}/metrics").text
    samples = _samples(body)

    def value(name: str, **labels: str) -> float:
        return samples[name, frozenset(labels.items())]

    assert value("docuchat_tenant_jobs", queue="ingest", tenant=tenant, status="queued") == 1
    assert value("docuchat_tenant_jobs", queue="chat", tenant=tenant, status="queued") == 1
    assert value("docuchat_ingest_batches", tenant=tenant, status="queued") == 3
    assert client.headers["X-Tenant-ID"] not in body  # ids, never slugs


def _samples(body: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }
