"""One reader per API process for every open event stream.

A relay used to hold a Redis connection of its own, blocked in XREAD on its one stream, so an
API process needed as many connections as it had readers. The hub reads every subscribed
stream with one XREAD on one connection (up to `BATCH` entries a call) and hands each entry to
the subscriptions of its stream. Subscribing or leaving re-arms the read at once: the hub's
XREAD also watches a small wake stream of its own, which `subscribe` and `leave` append to.

A subscription buffers what its reader has not taken yet. A reader slower than its answer is
produced (`COALESCE_AFTER` events still waiting when more arrive) gets its deltas coalesced:
consecutive `delta` events become one, with the text of all and the id of the last, so
Last-Event-ID still resumes exactly after what the reader has seen, and what waits stays
bounded by the answer's text, not its number of pieces.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

import msgspec
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import RedisError, ResponseError

from transport.events import StoredEvent, format_stream_id, parse_stream_id

log = logging.getLogger("docuchat.transport")

BATCH = 2000  # entries per XREAD, across every stream
BLOCK_MS = 10_000  # an idle XREAD ends this often (the wake stream ends it sooner)
COALESCE_AFTER = 32  # events waiting for a reader before its deltas merge
# After a read that brought entries, wait this long before the next: each read then brings
# more entries at once (a read costs in proportion to the streams open), for a few ms.
READ_PAUSE_SECONDS = 0.003
WAKE_TTL_SECONDS = 3600


def _id_tuple(stream_id: bytes | str) -> tuple[int, int]:
    text = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
    milliseconds, _, sequence = text.partition("-")
    return int(milliseconds), int(sequence or 0)


class HubClosed(Exception):
    """The hub stopped (the server is shutting down, or Redis failed): `reason` says which."""

    def __init__(self, reason: str, draining: bool) -> None:
        super().__init__(reason)
        self.draining = draining


class Subscription:
    """One reader's view of one stream: the events after `cursor`, as they come."""

    def __init__(self, hub: StreamHub, key: str, cursor: str, first_read: int) -> None:
        self.key = key
        self.cursor = _id_tuple(cursor)
        self.first_read = first_read  # the first read issued after it subscribed
        self._hub = hub
        self._waiting: deque[StoredEvent] = deque()
        self._ready = asyncio.Event()
        self._closed: HubClosed | None = None

    def _feed(self, entries: Sequence[tuple[Any, dict[bytes, bytes]]]) -> None:
        # Slow is what the reader left waiting from earlier reads: a long backlog read at once
        # (a resume from the start) goes out event by event.
        slow = len(self._waiting) >= COALESCE_AFTER
        for entry_id, fields in entries:
            position = _id_tuple(entry_id)
            if position <= self.cursor:
                continue
            self.cursor = position
            text_id = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
            stored = StoredEvent(text_id, fields[b"event"].decode(), fields[b"data"])
            last = self._waiting[-1] if self._waiting else None
            if slow and last is not None and last.name == "delta" and stored.name == "delta":
                self._waiting[-1] = _merged(last, stored)
            else:
                self._waiting.append(stored)
        if self._waiting:
            self._ready.set()

    def _close(self, reason: HubClosed) -> None:
        self._closed = reason
        self._ready.set()

    async def next(self, seconds: float) -> list[StoredEvent]:
        """What arrived since the last call, waiting up to `seconds` for something (an
        empty list: nothing came). Raises HubClosed when the hub stopped."""
        if not self._waiting and self._closed is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), seconds)
        self._ready.clear()
        if not self._waiting and self._closed is not None:
            raise self._closed
        taken = list(self._waiting)
        self._waiting.clear()
        return taken

    async def leave(self) -> None:
        await self._hub._leave(self)


def _merged(first: StoredEvent, second: StoredEvent) -> StoredEvent:
    text = msgspec.json.decode(first.data)["text"] + msgspec.json.decode(second.data)["text"]
    return StoredEvent(second.id, "delta", msgspec.json.encode({"text": text}))


class StreamHub:
    """The process's one reader. `start` it in the lifespan, `close` it at shutdown."""

    def __init__(self, reader: AsyncRedis, writer: AsyncRedis, block_ms: int = BLOCK_MS) -> None:
        self._reader = reader  # the hub's own connection: it blocks
        self._writer = writer  # any pool: the wake stream's short writes
        self._block_ms = block_ms
        self._wake_key = f"docuchat:relay:{uuid.uuid4().hex}:wake"
        self._wake_cursor = "0-0"
        self._streams: dict[str, set[Subscription]] = {}
        self._cursors: dict[str, str] = {}  # per stream, where the next read starts
        self._issued = 0  # reads issued so far
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed: HubClosed | None = None
        self.reads = 0  # XREAD calls made, for the benchmark

    @property
    def open_streams(self) -> int:
        return sum(len(subscriptions) for subscriptions in self._streams.values())

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="stream-hub")

    async def subscribe(self, key: str, after: str) -> Subscription:
        """Follow `key` after the id `after`; ValueError for an id Redis would refuse (one
        reader's bad id must never reach the read every reader shares)."""
        if self._closed is not None:
            raise self._closed
        parsed = parse_stream_id(after)
        if parsed is None:
            raise ValueError(f"not a stream id: {after!r}")
        after = format_stream_id(parsed)
        subscription = Subscription(self, key, after, self._issued + 1)
        self._streams.setdefault(key, set()).add(subscription)
        current = self._cursors.get(key)
        if current is None or _id_tuple(after) < _id_tuple(current):
            self._cursors[key] = after
        await self._wake()
        return subscription

    async def _leave(self, subscription: Subscription) -> None:
        readers = self._streams.get(subscription.key)
        if readers is not None:
            readers.discard(subscription)
            if not readers:
                del self._streams[subscription.key]
                self._cursors.pop(subscription.key, None)
                await self._wake()

    async def _wake(self) -> None:
        self._changed.set()
        try:
            pipe = self._writer.pipeline(transaction=False)
            pipe.xadd(self._wake_key, {"w": "1"}, maxlen=16, approximate=False)
            pipe.expire(self._wake_key, WAKE_TTL_SECONDS)
            await pipe.execute()
        except RedisError as exc:  # the reader will fail too and say so
            log.warning("could not wake the stream hub: %s", exc)

    async def close(self, reason: str, draining: bool = True) -> None:
        self._stop(HubClosed(reason, draining))
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(RedisError):
            await self._writer.delete(self._wake_key)

    def _stop(self, reason: HubClosed) -> None:
        self._closed = reason
        self._fail_all(reason)

    def _fail_all(self, reason: HubClosed) -> None:
        """Redis failed: every current reader is told; new ones may subscribe again."""
        for subscriptions in self._streams.values():
            for subscription in subscriptions:
                subscription._close(reason)
        self._streams.clear()
        self._cursors.clear()

    async def _drop_refused(self, cursors: dict[Any, Any], exc: ResponseError) -> None:
        """Find the streams whose read Redis refuses, one short read each, and end their
        subscriptions alone; the shared read goes on for every other stream."""
        log.warning("the stream hub's read was refused (%s); finding the stream", exc)
        refused = HubClosed(f"the event stream is unavailable: {exc}", False)
        keys = [key for key in cursors if key != self._wake_key]
        pipe = self._writer.pipeline(transaction=False)
        for key in keys:
            pipe.xread({key: cursors[key]}, count=1)
        try:
            replies = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError):
            return  # the connection failed: the next shared read says so
        for key, reply in zip(keys, replies, strict=True):
            if isinstance(reply, ResponseError):
                self._end(key, refused)

    def _end(self, key: str, reason: HubClosed) -> None:
        """End the subscriptions of one stream, and stop reading it."""
        for subscription in self._streams.pop(key, ()):
            subscription._close(reason)
        self._cursors.pop(key, None)

    async def _run(self) -> None:
        while self._closed is None:
            if not self._streams:
                self._changed.clear()
                await self._changed.wait()
                continue
            self._changed.clear()
            cursors: dict[Any, Any] = dict(self._cursors)
            cursors[self._wake_key] = self._wake_cursor
            self._issued += 1
            issued = self._issued
            try:
                reply = await self._reader.xread(cursors, count=BATCH, block=self._block_ms)
            except asyncio.CancelledError:
                raise
            except ResponseError as exc:
                # Redis answered, and refused the read: a stream's cursor or type is to blame,
                # not the connection. Only the readers of that stream are told.
                await self._drop_refused(cursors, exc)
                continue
            except (RedisError, OSError) as exc:
                if self._closed is None:
                    log.warning("the stream hub's read failed: %s", exc)
                    self._fail_all(HubClosed(f"the event stream is unavailable: {exc}", False))
                    await asyncio.sleep(0.2)
                continue
            self.reads += 1
            brought = False
            for raw_key, entries in cast("list[Any]", reply or []):
                key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
                last = entries[-1][0]
                last_id = last.decode() if isinstance(last, bytes) else str(last)
                if key == self._wake_key:
                    self._wake_cursor = last_id
                    continue
                brought = True
                late = False
                # Only the readers this read was issued for get its entries: one that
                # subscribed meanwhile may want older ones, which the next read fetches.
                try:
                    for subscription in list(self._streams.get(key, ())):
                        if subscription.first_read <= issued:
                            subscription._feed(entries)
                        else:
                            late = True
                except Exception as exc:  # an entry no writer of ours made: this stream only
                    log.warning("stream %s holds an entry the hub cannot read: %r", key, exc)
                    self._end(key, HubClosed("the event stream holds an unreadable event", False))
                    continue
                if key in self._cursors and not late:
                    self._cursors[key] = last_id
            if brought:
                await asyncio.sleep(READ_PAUSE_SECONDS)
