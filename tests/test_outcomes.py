"""Job outcomes: a batch of pages retried in the database after a backoff, an answer under
Dramatiq's own retry machinery (its StubBroker, no Redis). Permanent errors fail at once,
anything else is retried up to its limit and then fails for good, a cancelled job just ends.
The outcome's record in Postgres is best effort; here the database is out of reach on
purpose, and the work's fate must not depend on it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage, Retries, Shutdown, TimeLimitExceeded
from sqlalchemy import Engine, create_engine

from db.batches import Claim
from pipeline.errors import NotAPdf
from usecases.jobs import Cancelled
from workers.outcomes import backoff, batch_outcome, chat_outcome

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
    ("raised", "outcomes", "wakes"),
    [
        (RuntimeError("the database went away"), [], [1000]),
        (TimeLimitExceeded(), [], [1000]),
        (NotAPdf(), ["failed"], []),
        (Cancelled(), [], []),
        (Shutdown(), [], []),
    ],
    ids=["transient", "time-limit", "permanent", "cancelled", "shutdown"],
)
def test_a_batch_is_retried_only_for_what_a_retry_can_mend(
    unreachable: Engine, raised: BaseException, outcomes: list[str], wakes: list[int | None]
) -> None:
    """Batches retry in the database, not by Dramatiq's retries: a transient failure sends a
    turn after the backoff; a bad file fails the job at once; a cancelled batch and a stopping
    worker's send nothing here (the turn's own end sends the next turn at once)."""
    counted: list[str] = []
    woken: list[int | None] = []
    claim = Claim(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), "worker-1")
    with batch_outcome(unreachable, claim, 5, counted.append, woken.append):
        raise raised
    assert counted == outcomes
    assert woken == wakes


def test_the_backoff_doubles_up_to_a_minute() -> None:
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 6, 7, 20)] == [1, 2, 4, 32, 60, 60]


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
