"""The `openai` embedding provider against a stand-in speaking OpenAI's HTTP protocol, alone
and as the configured provider of the whole stack (API, worker, search)."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import Engine

from bootstrap import bootstrap, owner_engine
from core.settings import Settings
from db.migrate import upgrade
from db.roles import ensure_app_login
from pipeline.embedding import OpenAIEmbedder
from pipeline.errors import EmbeddingRejected, EmbeddingUnavailable
from standins.documents import english_pdf, filler
from standins.model_server import StandIn
from tests.ingest_helpers import ingest, tenant_client, upload, wait_for_job
from tests.stack import LiveServer, Services, WorkerProcess, app_url_of, settings_for


def _embedder(standin: StandIn, **overrides: object) -> OpenAIEmbedder:
    options: dict[str, object] = {
        "api_key": "sk-test", "base_url": standin.base_url, "timeout": 5.0, "max_retries": 2,
    }  # fmt: skip
    return OpenAIEmbedder("standin-embed", 64, **(options | overrides))  # type: ignore[arg-type]


def test_passages_come_back_normalised_in_order_with_the_provider_s_usage(
    standin: StandIn,
) -> None:
    result = _embedder(standin).embed_passages(["red apples", "green pears", "red apples"])
    assert result.vectors.shape == (3, 64)
    assert np.allclose(np.linalg.norm(result.vectors, axis=1), 1)
    assert np.allclose(result.vectors[0], result.vectors[2])
    assert result.prompt_tokens == 6  # what the provider reported
    request = standin.requests[-1]
    assert request["body"]["model"] == "standin-embed"
    assert request["auth"] == "Bearer sk-test"


def test_server_errors_are_retried_then_reported_as_transient(standin: StandIn) -> None:
    standin.failures = [500, 503]
    assert _embedder(standin).embed_query("retried").vectors.shape == (1, 64)
    assert len(standin.requests) == 3
    standin.failures = [500, 500, 500]
    with pytest.raises(EmbeddingUnavailable, match="HTTP 500"):
        _embedder(standin).embed_query("gives up")


def test_refusals_are_permanent_and_say_why(standin: StandIn) -> None:
    standin.failures = [401]
    with pytest.raises(EmbeddingRejected, match=r"HTTP 401\): stand-in failure 401"):
        _embedder(standin).embed_query("bad key")
    assert len(standin.requests) == 1  # not retried
    with pytest.raises(EmbeddingRejected, match="EMBEDDING_DIMENSIONS"):
        OpenAIEmbedder(
            "standin-embed", 32, api_key=None, base_url=standin.base_url, timeout=5, max_retries=0
        ).embed_query("wrong width")


def test_a_stalled_provider_times_out(standin: StandIn) -> None:
    standin.stall_seconds = 2
    with pytest.raises(EmbeddingUnavailable, match="unreachable"):
        _embedder(standin, timeout=0.5, max_retries=0).embed_query("slow")


def test_the_whole_stack_runs_on_an_openai_compatible_embedder_by_configuration(
    services: Services, empty_database: str, standin: StandIn, redis_database: str
) -> None:
    settings: Settings = settings_for(
        services,
        DATABASE_URL=app_url_of(empty_database),
        DATABASE_OWNER_URL=empty_database,
        REDIS_URL=redis_database,
        EMBEDDING_PROVIDER="openai",
        EMBEDDING_MODEL="standin-embed",
        EMBEDDING_DIMENSIONS="64",
        OPENAI_BASE_URL=standin.base_url,
        RATE_LIMIT_PER_MINUTE="100000",
    )
    assert isinstance(bootstrap(settings).embedder, OpenAIEmbedder)
    owner: Engine = owner_engine(settings)
    try:
        upgrade(owner, 64)
        ensure_app_login(owner, settings.database_url or "")
        extra = {
            "EMBEDDING_MODEL": "standin-embed",
            "EMBEDDING_DIMENSIONS": "64",
            "OPENAI_MAX_RETRIES": "0",  # let the job's own retries handle provider trouble
        }
        with (
            WorkerProcess(settings, **extra),
            LiveServer(settings) as server,
            tenant_client(owner, settings, server.url) as client,
        ):
            pages = ["The violet beacon guides ships home. " + filler(5, 10), filler(6, 10)]
            document = ingest(client, english_pdf(pages), "beacon.pdf")
            results = client.post("/v1/search", json={"query": "violet beacon ships"}).json()
            # Provider trouble: the job is retried with backoff and then succeeds.
            standin.failures = [500, 503]
            retried = ingest(client, english_pdf([filler(7, 6)]), "retried.pdf")
            assert retried["status"] == "ready" and not standin.failures
            # A refusal is permanent: the job fails at once with the provider's reason.
            standin.failures = [401]
            response = upload(client, english_pdf([filler(8, 6)]), "refused.pdf")
            job = wait_for_job(client, response.json()["job"]["id"])
            assert job["status"] == "failed"
            assert "refused the request (HTTP 401)" in job["error"]
            # Usage is what the provider reported: two documents and one search query.
            usage = client.get("/v1/usage").json()["last_24h"]["by_model"]["standin-embed"]
        reported = sum(prompt for _model, prompt, _completion in standin.reported_usage)
        assert usage == {
            "prompt_tokens": reported,
            "completion_tokens": 0,
            "total_tokens": reported,
            "requests": 3,
            "estimated_tokens": 0,  # the provider's own figures
        }
        assert results["results"][0]["document_id"] == document["id"]
        assert results["results"][0]["page_start"] == 1
        assert any(r["path"] == "/v1/embeddings" for r in standin.requests)
    finally:
        owner.dispose()
