"""Rate limits by cost, through the real HTTP API: reads (polling a job, lists, streams) have
a budget of their own, so a page following an upload never runs out of the budget its
questions need, and the questions are still limited."""

from __future__ import annotations

import httpx
import pytest

from core.settings import Settings
from standins.documents import english_pdf
from tests.ingest_helpers import upload
from tests.stack import Services, settings_for


@pytest.fixture(scope="module")
def api_settings(services: Services, module_redis_database: str) -> Settings:
    """The default budgets: 50 expensive requests and 600 reads a minute. Its own Redis
    database: the upload's job stays queued, there is always something to poll."""
    return settings_for(
        services,
        RATE_LIMIT_PER_MINUTE="50",
        READ_RATE_LIMIT_PER_MINUTE="600",
        REDIS_URL=module_redis_database,
    )


def test_polling_a_job_is_never_throttled_while_searches_are(client: httpx.Client) -> None:
    job = upload(client, english_pdf(["The tide tables are on page one."])).json()["job"]
    # A page polling at 2.5/s for a minute makes 150 reads; here they come at once.
    polls = [client.get(f"/v1/jobs/{job['id']}") for _ in range(150)]
    assert {poll.status_code for poll in polls} == {200}
    assert polls[-1].headers["RateLimit-Policy"] == '"reads";q=600;w=60'
    assert polls[-1].headers["RateLimit"].startswith('"reads";r=450;t=')

    searches = [client.post("/v1/search", json={"query": "tide tables"}) for _ in range(60)]
    statuses = [search.status_code for search in searches]
    assert statuses == [200] * 49 + [429] * 11  # the upload spent one of the 50
    refused = searches[-1]
    assert refused.headers["RateLimit-Policy"] == '"expensive";q=50;w=60'
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert refused.json()["budget"] == "expensive"
    assert (
        "searches" in refused.json()["detail"]
        and "limited to 50 a minute" in refused.json()["detail"]
    )

    # The reads budget is untouched by the searches, and the other way round.
    still = client.get(f"/v1/jobs/{job['id']}")
    assert still.status_code == 200 and still.headers["RateLimit"].startswith('"reads";r=449;')
    assert client.get("/v1/sessions").status_code == 200
    assert client.post("/v1/chat", json={"message": "Where are the tides?"}).status_code == 429
