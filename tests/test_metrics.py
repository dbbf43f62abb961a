"""`GET /metrics` through the real API, after real work by a real worker: request latency by
route, the fleet's finished jobs, time to first token, tokens and pages, the queues."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from standins.chat_client import ask, read_stream
from standins.documents import english_pdf, filler
from tests.ingest_helpers import ingest, tenant_client
from tests.stack import LiveServer, OwnDatabase, Services, WorkerProcess


def _samples(body: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def test_metrics_count_the_fleet_s_work_and_the_api_s_requests(
    services: Services, own_database: OwnDatabase, redis_database: str
) -> None:
    # A fleet of its own (Redis and database): its counters start at zero.
    engine = own_database.engine
    settings = own_database.settings(services, REDIS_URL=redis_database)
    pages = ["The copper lantern hangs in the harbour. " + filler(2, 8), filler(3, 8)]
    with (
        LiveServer(settings) as server,
        tenant_client(engine, settings, server.url) as client,
        WorkerProcess(settings),
    ):
        document = ingest(client, english_pdf(pages), "metrics.pdf")
        answer = read_stream(client, ask(client, "Where does the lantern hang?")["stream_url"])
        response = httpx.get(f"{server.url}/metrics")
    body = response.text
    samples = _samples(body)

    def value(name: str, **labels: str) -> float:
        return samples[(name, frozenset(labels.items()))]

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert value("docuchat_jobs_finished_total", kind="ingest", status="succeeded") == 1
    assert value("docuchat_jobs_finished_total", kind="chat", status="succeeded") == 1
    assert value("docuchat_ingest_pages_total") == len(pages) == document["pages"]
    assert value("docuchat_ingest_seconds_total") > 0
    assert value("docuchat_time_to_first_token_seconds_count") == 1
    assert value("docuchat_time_to_first_token_seconds_bucket", le="+Inf") == 1
    completion = answer.last("end")["usage"]["completion_tokens"]
    assert value("docuchat_tokens_streamed_total") == completion > 0
    assert value("docuchat_queue_depth", queue="chat") == 0
    assert (
        value(
            "docuchat_http_request_duration_seconds_count",
            method="POST",
            route="/v1/files",
            status="202",
        )
        >= 1
    )
    routes = {dict(labels).get("route") for name, labels in samples if "http_request" in name}
    assert not any(document["id"] in str(route) for route in routes)  # templates, not paths
    slug = client.headers["X-Tenant-ID"]
    assert slug not in body and document["id"] not in body  # names no tenant or document
