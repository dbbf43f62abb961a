"""Guard tests for project rules: every actor states its retry policy and time limit."""

from __future__ import annotations

import dramatiq

from core.bootstrap import INGEST_ACTOR, QUEUES
from tests.conftest import Services, settings_for


def test_every_actor_sets_retries_and_a_time_limit(services: Services, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for key, value in {
        "REDIS_URL": services.redis_url,
        "DATABASE_URL": "postgresql://unused/unused",
        "JWT_SECRET": "x" * 40,
    }.items():
        monkeypatch.setenv(key, value)
    settings_for(services)  # the environment is complete
    import workers.actors  # noqa: F401 - declares the actors on the workers' broker

    broker = dramatiq.get_broker()
    actors = {name: broker.get_actor(name) for name in broker.get_declared_actors()}
    assert INGEST_ACTOR in actors
    for name, actor in actors.items():
        assert "max_retries" in actor.options, f"{name} must set max_retries"
        assert "time_limit" in actor.options, f"{name} must set time_limit"
        assert actor.queue_name in QUEUES, f"{name} uses an undeclared queue"
