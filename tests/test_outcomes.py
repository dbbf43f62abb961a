"""Job outcomes under Dramatiq's own retry machinery (its StubBroker, no Redis): permanent
errors fail at once, anything else is retried up to the actor's limit and then fails for
good, a cancelled job just ends. The outcome's record in Postgres is best effort; here the
database is out of reach on purpose, and the work's fate must not depend on it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage, Retries
from sqlalchemy import Engine, create_engine

from pipeline.errors import NotAPdf
from usecases.jobs import Cancelled
from workers.outcomes import chat_outcome, ingest_outcome

MAX_RETRIES = 2


@pytest.fixture
def broker() -> Iterator[StubBroker]:
    stub = StubBroker(middleware=[Retries(), CurrentMessage()])
    stub.emit_after("process_boot")
    yield stub
    stub.close()


@pytest.fixture
def unreachable() -> Iterator[Engine]:
    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/nothing", pool_size=1)
    yield engine
    engine.dispose()


def _run(broker: StubBroker, actor: dramatiq.Actor[..., None], *args: object) -> None:
    worker = dramatiq.Worker(broker, worker_timeout=50)
    worker.start()
    try:
        actor.send(*args)
        broker.join(actor.queue_name, fail_fast=False)
        worker.join()
    finally:
        worker.stop()


@pytest.mark.parametrize(
    ("raised", "attempts", "outcomes"),
    [
        (RuntimeError("the database went away"), MAX_RETRIES + 1, ["failed"]),
        (NotAPdf(), 1, ["failed"]),
        (Cancelled(), 1, ["cancelled"]),
    ],
    ids=["transient", "permanent", "cancelled"],
)
def test_an_ingest_job_is_retried_only_for_what_a_retry_can_mend(
    broker: StubBroker,
    unreachable: Engine,
    raised: BaseException,
    attempts: int,
    outcomes: list[str],
) -> None:
    tries: list[int] = []
    counted: list[str] = []

    @dramatiq.actor(
        broker=broker, max_retries=MAX_RETRIES, min_backoff=1, max_backoff=5, throws=(NotAPdf,)
    )
    def ingest(job_id: str) -> None:
        tries.append(1)
        with ingest_outcome(
            unreachable, uuid.uuid4(), uuid.UUID(job_id), MAX_RETRIES, counted.append
        ):
            raise raised

    _run(broker, ingest, str(uuid.uuid4()))
    assert len(tries) == attempts
    assert counted == outcomes


def test_an_answer_that_fails_for_good_says_so_on_its_stream(
    broker: StubBroker, unreachable: Engine
) -> None:
    announced: list[str] = []
    counted: list[str] = []

    @dramatiq.actor(broker=broker, max_retries=MAX_RETRIES, min_backoff=1, max_backoff=5)
    def answer(job_id: str) -> None:
        job = uuid.UUID(job_id)
        with chat_outcome(
            unreachable, uuid.uuid4(), job, MAX_RETRIES, announced.append, counted.append
        ):
            raise RuntimeError("Redis went away")

    _run(broker, answer, str(uuid.uuid4()))
    assert announced == [
        f"gave up after {MAX_RETRIES + 1} attempts: an internal error (logged on the worker)"
    ]
    assert counted == ["failed"]
