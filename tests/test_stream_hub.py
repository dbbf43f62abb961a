"""The stream hub through a real Redis: one pub/sub connection for every stream, the seam
between a reader's backlog and the live tail exact while writers publish, gaps repaired from
the stream after a lost connection, and a reader whose stream Redis lost told alone."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from transport.events import (
    NOTHING_SPENT,
    Delta,
    End,
    EventWriter,
    StoredEvent,
    live_channel,
    stored_events,
    stream_key,
)
from transport.hub import HubClosed, StreamHub, Subscription

HUB_NAME = "stream-hub-under-test"
T = TypeVar("T")


@pytest.fixture
def url(redis_database: str) -> str:
    return redis_database


def _with_hub(url: str, scenario: Callable[[StreamHub], Awaitable[T]], **options: Any) -> T:
    async def run() -> T:
        listener = AsyncRedis.from_url(url, client_name=HUB_NAME)
        reader = AsyncRedis.from_url(url)
        hub = StreamHub(listener, reader, **options)
        hub.start()
        try:
            return await scenario(hub)
        finally:
            await hub.close("done")
            await listener.aclose()
            await reader.aclose()

    return asyncio.run(run())


async def _until_end(subscription: Subscription) -> list[StoredEvent]:
    taken: list[StoredEvent] = []
    while not taken or not taken[-1].terminal:
        arrived = await subscription.next(10)
        assert arrived, f"nothing came for 10 s after {len(taken)} events"
        taken += arrived
    await subscription.leave()
    return taken


def _text(taken: list[StoredEvent]) -> str:
    return "".join(json.loads(stored.data)["text"] for stored in taken if stored.name == "delta")


def _write_answer(url: str, job_id: uuid.UUID, pieces: int, pause: float) -> threading.Thread:
    """A worker answering in another thread: `pieces` deltas `pause` apart, then the end."""

    def write() -> None:
        writer = EventWriter(redis.Redis.from_url(url), job_id, 60)
        for n in range(pieces):
            writer.emit(Delta(f"{n} "))
            time.sleep(pause)
        writer.emit(End("stop", NOTHING_SPENT))

    thread = threading.Thread(target=write)
    thread.start()
    return thread


def _hub_connections(url: str) -> list[dict[str, Any]]:
    clients = redis.Redis.from_url(url).client_list()
    return [client for client in clients if client["name"] == HUB_NAME]


def test_readers_joining_mid_answer_get_every_event_once_in_order(url: str) -> None:
    """Readers join while the answer is written, some from its start and some after the last
    event written so far (as Last-Event-ID would say): each gets, once and in order, every
    event after its position, whichever side of its seam (backlog or live) it fell on."""
    job = uuid.uuid4()
    key = stream_key(job)
    plain = redis.Redis.from_url(url)

    async def scenario(hub: StreamHub) -> list[tuple[str, list[StoredEvent]]]:
        writer = _write_answer(url, job, 400, 0.002)

        async def join(delay: float, from_start: bool) -> tuple[str, list[StoredEvent]]:
            await asyncio.sleep(delay)
            newest = stored_events(
                cast("Any", await asyncio.to_thread(plain.xrevrange, key, count=1))
            )
            after = "0-0" if from_start or not newest else newest[0].id
            return after, await _until_end(await hub.subscribe(key, after))

        readers = [join(0.03 * n, from_start=n % 2 == 0) for n in range(24)]
        joined = await asyncio.gather(*readers)
        await asyncio.to_thread(writer.join)
        return joined

    joined = _with_hub(url, scenario)
    stream = stored_events(cast("Any", plain.xrange(key)))
    for after, taken in joined:
        expected = [stored for stored in stream if _order(stored.id) > _order(after)]
        ids = [stored.id for stored in taken]
        assert ids == sorted(ids, key=_order) and len(set(ids)) == len(ids)
        assert set(ids) <= {stored.id for stored in expected}
        assert taken[-1] == expected[-1] and taken[-1].name == "end"
        assert _text(taken) == _text(expected)
    assert sum(after != "0-0" for after, _ in joined) >= 6  # resumed mid-answer, not at its end


def _order(stream_id: str) -> tuple[int, int]:
    milliseconds, sequence = stream_id.split("-")
    return int(milliseconds), int(sequence)


def test_a_lost_connection_is_repaired_from_the_stream_without_an_error(url: str) -> None:
    """The hub's pub/sub connection is killed twice mid-answer: it connects again, subscribes
    again, and reads from the stream what went by meanwhile; the reader sees no error and
    every event once."""
    job = uuid.uuid4()
    admin = redis.Redis.from_url(url)

    async def scenario(hub: StreamHub) -> list[StoredEvent]:
        subscription = await hub.subscribe(stream_key(job), "0-0")
        writer = _write_answer(url, job, 150, 0.01)
        taken: list[StoredEvent] = []
        for kill_after in (30, 90):
            while len(taken) < kill_after:
                taken += await subscription.next(10)
            (connection,) = _hub_connections(url)
            admin.client_kill_filter(_id=connection["id"])
        taken += await _until_end(subscription)
        await asyncio.to_thread(writer.join)
        return taken

    taken = _with_hub(url, scenario)
    assert _text(taken) == "".join(f"{n} " for n in range(150))
    assert [stored.name for stored in taken].count("end") == 1


def test_a_reader_whose_stream_redis_lost_is_told_and_others_read_on(url: str) -> None:
    """Redis lost one stream while the connection was down (as a restart would): its reader
    gets an error (it resumes with Last-Event-ID), the reader of another stream reads on."""
    lost, kept = uuid.uuid4(), uuid.uuid4()
    admin = redis.Redis.from_url(url)

    async def scenario(hub: StreamHub) -> tuple[BaseException | None, list[StoredEvent]]:
        doomed = await hub.subscribe(stream_key(lost), "0-0")
        fine = await hub.subscribe(stream_key(kept), "0-0")
        first = EventWriter(redis.Redis.from_url(url), lost, 60)
        first.emit(Delta("seen "))
        assert [stored.name for stored in await doomed.next(10)] == ["delta"]
        admin.delete(stream_key(lost))
        (connection,) = _hub_connections(url)
        admin.client_kill_filter(_id=connection["id"])
        writer = _write_answer(url, kept, 20, 0.01)
        try:
            while await doomed.next(10):
                pass
            failure = None
        except HubClosed as closed:
            failure = closed
        taken = await _until_end(fine)
        await asyncio.to_thread(writer.join)
        return failure, taken

    failure, taken = _with_hub(url, scenario)
    assert isinstance(failure, HubClosed) and not failure.draining
    assert _text(taken) == "".join(f"{n} " for n in range(20))


def test_one_connection_subscribed_while_a_stream_has_readers(url: str) -> None:
    """Fifty streams, two readers each, cost one connection; a channel is subscribed while
    its stream has a reader and unsubscribed when the last one leaves."""
    jobs = [uuid.uuid4() for _ in range(50)]
    admin = redis.Redis.from_url(url)

    def subscribers(job: uuid.UUID) -> int:
        return int(admin.pubsub_numsub(live_channel(stream_key(job)))[0][1])

    async def scenario(hub: StreamHub) -> tuple[int, list[int], list[int], list[int]]:
        pairs = [
            (
                await hub.subscribe(stream_key(job), "0-0"),
                await hub.subscribe(stream_key(job), "0-0"),
            )
            for job in jobs
        ]
        connections = len(_hub_connections(url))
        both = [subscribers(job) for job in jobs]
        for first, _ in pairs:
            await first.leave()
        one = [subscribers(job) for job in jobs]
        for _, second in pairs:
            await second.leave()
        await asyncio.sleep(0.2)  # the last UNSUBSCRIBE is sent; Redis reads it meanwhile
        return connections, both, one, [subscribers(job) for job in jobs]

    connections, both, one, none = _with_hub(url, scenario)
    assert connections == 1
    assert both == one == [1] * len(jobs)
    assert none == [0] * len(jobs)


def test_an_event_added_without_publishing_reaches_its_reader(url: str) -> None:
    """A writer that only adds to the stream (one from before the channel existed) is read
    when its stream has been quiet for the repair interval."""
    job = uuid.uuid4()
    plain = redis.Redis.from_url(url)

    async def scenario(hub: StreamHub) -> list[StoredEvent]:
        subscription = await hub.subscribe(stream_key(job), "0-0")
        plain.xadd(stream_key(job), {"event": "delta", "data": b'{"text":"quiet "}'})
        plain.xadd(stream_key(job), {"event": "end", "data": b'{"finish_reason":"stop"}'})
        return await _until_end(subscription)

    taken = _with_hub(url, scenario, repair_seconds=0.2)
    assert [stored.name for stored in taken] == ["delta", "end"]
    assert _text(taken) == "quiet "
