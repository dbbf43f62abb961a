"""One pub/sub connection per API process for every open event stream.

Writers add each event to its job's stream and publish it, with its stream id, on the job's
channel in the same script (transport/events.py). The hub holds one pub/sub connection,
subscribed to the channels of the streams its readers follow (the first reader of a job
subscribes, the last one to leave unsubscribes), and hands each message to the readers of
its stream: the relay's cost grows with the events relayed, not with the streams open.

The seam between what a reader missed and what comes live is exact. The hub waits for Redis
to confirm the channel's subscription before it reads the backlog (XRANGE after the reader's
id), so every event is in the backlog or comes live, and a reader drops what it already has
(ids only grow). A gap is repaired from the stream, never guessed: when the connection is
lost and made again, readers hold the live tail until their stream is read again after what
they have; a reader whose stream cannot be read then, or no longer holds its last event
(Redis lost it), is told, and resumes with Last-Event-ID. A stream that brought nothing for
`repair_seconds` is read too, in case a writer did not publish. Only the readers of a
stream Redis refuses to read are told.

A reader slower than its answer is produced (`COALESCE_AFTER` events still waiting when more
arrive) gets its deltas coalesced: consecutive `delta` events become one, with the text of
all and the id of the last, so Last-Event-ID still resumes exactly after what the reader has
seen, and what waits stays bounded by the answer's text, not its number of pieces.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Coroutine, Sequence
from typing import Any

import msgspec
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError

from transport.events import (
    StoredEvent,
    format_stream_id,
    live_channel,
    parse_live_message,
    parse_stream_id,
)

log = logging.getLogger("docuchat.transport")

BATCH = 1000  # entries per XRANGE, channels per SUBSCRIBE
REPAIR_BATCH = 100  # streams read again in one round trip
COALESCE_AFTER = 32  # events waiting for a reader before its deltas merge
REPAIR_SECONDS = 5.0  # a quiet stream is read this often; the connection is pinged as often
CONFIRM_SECONDS = 5.0  # a subscription Redis has not confirmed by then fails its reader
OUTAGE_SECONDS = 5.0  # readers wait this long for a lost connection to come back
RECONNECT_PAUSE_SECONDS = 0.2

Position = tuple[int, int]
Entry = tuple[Position, StoredEvent]


class HubClosed(Exception):
    """The hub stopped (the server is shutting down, or Redis failed): `reason` says which."""

    def __init__(self, reason: str, draining: bool) -> None:
        super().__init__(reason)
        self.draining = draining


def _unavailable(detail: object) -> HubClosed:
    return HubClosed(f"the event stream is unavailable: {detail}", False)


def _position(stream_id: bytes) -> Position:
    milliseconds, _, sequence = stream_id.partition(b"-")
    return int(milliseconds), int(sequence or 0)


def _entries(replies: Any) -> list[Entry]:
    """XRANGE's entries; KeyError or ValueError for one no writer of ours made."""
    return [
        (
            _position(entry_id),
            StoredEvent(entry_id.decode(), fields[b"event"].decode(), fields[b"data"]),
        )
        for entry_id, fields in replies
    ]


class Subscription:
    """One reader's view of one stream: the events after `cursor`, as they come."""

    def __init__(self, hub: StreamHub, key: str, cursor: Position) -> None:
        self.key = key
        self.cursor = cursor
        self.anchored = False  # the cursor is an entry this reader was given
        self._hub = hub
        self._early: list[Entry] | None = []  # live events held back while the backlog is read
        self._waiting: deque[StoredEvent] = deque()
        self._ready = asyncio.Event()
        self._closed: HubClosed | None = None

    def _feed(self, entries: Sequence[Entry]) -> None:
        if self._early is not None:
            self._early.extend(entries)
            return
        # Slow is what the reader left waiting from earlier: a long backlog read at once (a
        # resume from the start) goes out event by event.
        slow = len(self._waiting) >= COALESCE_AFTER
        for position, stored in entries:
            if position <= self.cursor:
                continue
            self.cursor, self.anchored = position, True
            last = self._waiting[-1] if self._waiting else None
            if slow and last is not None and last.name == "delta" and stored.name == "delta":
                self._waiting[-1] = _merged(last, stored)
            else:
                self._waiting.append(stored)
        if self._waiting:
            self._ready.set()

    def _hold(self) -> None:
        """Keep what comes live until `_caught_up` (a backlog is being read)."""
        if self._early is None:
            self._early = []

    def _caught_up(self, backlog: list[Entry]) -> None:
        """The backlog is read: it goes first, then what came live meanwhile, in id order."""
        early, self._early = self._early or [], None
        self._feed(backlog)
        self._feed(sorted(early, key=lambda entry: entry[0]))

    def _close(self, reason: HubClosed) -> None:
        self._closed = reason
        self._ready.set()

    async def next(self, seconds: float) -> list[StoredEvent]:
        """What arrived since the last call, waiting up to `seconds` for something (an
        empty list: nothing came). Raises HubClosed when the hub stopped."""
        if not self._waiting and self._closed is None:
            # asyncio.timeout, not wait_for: no task made per call, and this runs per event.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._ready.wait()
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


class _Channel:
    """The readers of one stream, and the subscription to its channel."""

    def __init__(self, key: str, confirmed: asyncio.Future[None]) -> None:
        self.key = key
        self.readers: set[Subscription] = set()
        self.confirmed = confirmed  # Redis confirmed the subscription on this connection
        self.heard_at = time.monotonic()  # when the stream last brought something


class StreamHub:
    """The process's one listener. `start` it in the lifespan, `close` it at shutdown."""

    def __init__(
        self, listener: AsyncRedis, reader: AsyncRedis, repair_seconds: float = REPAIR_SECONDS
    ) -> None:
        self._listener = listener  # makes the pub/sub connection, which the hub owns
        self._reader = reader  # any pool: backlogs and repairs
        self._repair_seconds = repair_seconds
        self._connection: AbstractConnection | None = None
        self._channels: dict[bytes, _Channel] = {}
        # Per channel, the subscriptions sent and not yet confirmed, in the order sent:
        # Redis confirms them in that order.
        self._confirming: dict[bytes, deque[asyncio.Future[None]]] = {}
        self._heard_at = time.monotonic()  # anything read on the connection, a pong too
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed: HubClosed | None = None
        self.messages = 0  # live events read, for the benchmark

    @property
    def open_streams(self) -> int:
        return sum(len(channel.readers) for channel in self._channels.values())

    def start(self) -> None:
        self._spawn(self._listen())
        self._spawn(self._repair_quiet())

    async def subscribe(self, key: str, after: str) -> Subscription:
        """Follow `key` after the id `after`; ValueError for an id Redis would refuse (one
        reader's bad id must never reach what every reader shares). A reader whose backlog
        cannot be read gets its subscription closed: `next` says why."""
        if self._closed is not None:
            raise self._closed
        parsed = parse_stream_id(after)
        if parsed is None:
            raise ValueError(f"not a stream id: {after!r}")
        subscription = Subscription(self, key, parsed)
        name = live_channel(key).encode()
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel(key, self._expect_confirmation(name))
            channel.readers.add(subscription)
            await self._send_subscribe([name])
        else:
            channel.readers.add(subscription)
        try:
            await asyncio.wait_for(asyncio.shield(channel.confirmed), CONFIRM_SECONDS)
            backlog = await self._range(key, format_stream_id(parsed))
        except (RedisError, OSError, TimeoutError, KeyError, ValueError) as exc:
            log.warning("could not read the backlog of %s: %r", key, exc)
            self._end(subscription, _unavailable(exc))
            return subscription
        subscription._caught_up(backlog)
        return subscription

    async def _leave(self, subscription: Subscription) -> None:
        if self._remove(subscription):
            await self._send(["UNSUBSCRIBE", live_channel(subscription.key).encode()])

    def _remove(self, subscription: Subscription) -> bool:
        """Take a reader off its channel; True when it was the channel's last."""
        name = live_channel(subscription.key).encode()
        channel = self._channels.get(name)
        if channel is None or subscription not in channel.readers:
            return False
        channel.readers.discard(subscription)
        if channel.readers:
            return False
        del self._channels[name]
        return True

    def _end(self, subscription: Subscription, reason: HubClosed) -> None:
        """End one reader alone."""
        subscription._close(reason)
        if self._remove(subscription):
            self._spawn(self._send(["UNSUBSCRIBE", live_channel(subscription.key).encode()]))

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _expect_confirmation(self, name: bytes) -> asyncio.Future[None]:
        """A future done when Redis confirms the next SUBSCRIBE sent for `name`."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._confirming.setdefault(name, deque()).append(future)
        return future

    async def _send_subscribe(self, names: list[bytes]) -> None:
        """Subscribe to these channels (their confirmations expected already)."""
        if not await self._send(["SUBSCRIBE", *names]):
            for name in names:  # not sent: the reconnection subscribes again, then repairs
                for future in self._confirming.pop(name, ()):
                    if not future.done():
                        future.set_result(None)

    async def _send(self, command: list[Any]) -> bool:
        connection = self._connection
        if connection is None:
            return False
        try:
            await connection.send_command(*command, check_health=False)
        except (RedisError, OSError) as exc:  # the listener fails too, and reconnects
            log.warning("the stream hub could not send %s: %s", command[0], exc)
            return False
        return True

    async def _range(self, key: str, after: str) -> list[Entry]:
        """The stream's entries after `after`, every page of them."""
        found: list[Entry] = []
        start = f"({after}"
        while True:
            page = _entries(await self._reader.xrange(key, start, "+", count=BATCH))
            found += page
            if len(page) < BATCH:
                return found
            start = f"({format_stream_id(page[-1][0])}"

    # ---- the listener -------------------------------------------------------------------

    async def _listen(self) -> None:
        lost_at: float | None = None
        while self._closed is None:
            try:
                connection = self._listener.connection_pool.make_connection()
                await connection.connect()
                self._connection, self._heard_at = connection, time.monotonic()
                if self._channels:  # subscribe again, then repair from the streams
                    self._spawn(self._repair_all())
                lost_at = None
                while True:
                    reply = await connection.read_response(timeout=math.inf, push_request=True)
                    self._heard_at = time.monotonic()
                    self._dispatch(reply)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                if self._closed is not None:
                    return
                log.warning("the stream hub's connection failed: %s", exc)
                self._drop_connection()
                lost_at = lost_at or time.monotonic()
                if time.monotonic() - lost_at >= OUTAGE_SECONDS:
                    self._fail_all(_unavailable(exc))
                await asyncio.sleep(RECONNECT_PAUSE_SECONDS)

    def _dispatch(self, reply: Any) -> None:
        kind = reply[0]
        if kind == b"message":
            channel = self._channels.get(reply[1])
            if channel is None:
                return  # left meanwhile
            self.messages += 1
            try:
                stream_id, name, data = parse_live_message(reply[2])
                entry = (_position(stream_id), StoredEvent(stream_id.decode(), name, data))
            except ValueError:
                log.warning("channel %r carried a message the hub cannot read", reply[1])
                return  # the stream has the event: the next repair reads it
            channel.heard_at = time.monotonic()
            for subscription in channel.readers:
                subscription._feed((entry,))
        elif kind == b"subscribe":
            waiting = self._confirming.get(reply[1])
            if waiting:
                future = waiting.popleft()
                if not waiting:
                    del self._confirming[reply[1]]
                if not future.done():
                    future.set_result(None)

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._spawn(connection.disconnect(nowait=True))
        # What was waiting for a confirmation goes on; the reconnection repairs after it.
        for waiting in self._confirming.values():
            for future in waiting:
                if not future.done():
                    future.set_result(None)
        self._confirming.clear()

    async def _repair_all(self) -> None:
        """On a new connection: every channel subscribed again, every stream read again
        after what its readers have; a reader whose last event the stream lost is told."""
        channels = list(self._channels.values())
        for channel in channels:
            for reader in channel.readers:
                reader._hold()
        for start in range(0, len(channels), BATCH):
            chunk = channels[start : start + BATCH]
            names = [live_channel(channel.key).encode() for channel in chunk]
            for channel, name in zip(chunk, names, strict=True):
                channel.confirmed = self._expect_confirmation(name)
            await self._send_subscribe(names)
        with contextlib.suppress(TimeoutError):
            confirmed = [channel.confirmed for channel in channels]
            await asyncio.wait_for(asyncio.gather(*confirmed), CONFIRM_SECONDS)
        await self._repair([c for c in channels if c.readers], True)
        log.info("the stream hub subscribed and repaired %d streams", len(channels))

    async def _repair_quiet(self) -> None:
        """Every `repair_seconds`: ping the connection (one silent for three rounds is dead)
        and read again the streams that brought nothing for as long."""
        while self._closed is None:
            await asyncio.sleep(self._repair_seconds)
            connection = self._connection
            if connection is None:
                continue
            if time.monotonic() - self._heard_at > 3 * self._repair_seconds:
                log.warning("the stream hub's connection went silent; reconnecting")
                await connection.disconnect(nowait=True)
                continue
            await self._send(["PING"])
            quiet = time.monotonic() - self._repair_seconds
            await self._repair([c for c in self._channels.values() if c.heard_at <= quiet], False)

    async def _repair(self, channels: list[_Channel], reconnected: bool) -> None:
        """Read these streams after the position of their furthest-behind reader, in one
        round trip per REPAIR_BATCH streams, and hand each reader what it lacks. After a
        reconnection the readers hold what comes live until then: one whose stream cannot
        be read now, or lost what it read, is told (it resumes with Last-Event-ID), so none
        reads on past a gap."""
        for start in range(0, len(channels), REPAIR_BATCH):
            chunk = channels[start : start + REPAIR_BATCH]
            pipe = self._reader.pipeline(transaction=False)
            for channel in chunk:
                behind = min((r.cursor for r in channel.readers), default=(0, 0))
                pipe.xrange(channel.key, format_stream_id(behind), "+")
            try:
                replies = await pipe.execute(raise_on_error=False)
            except (RedisError, OSError) as exc:
                log.warning("the stream hub could not repair %d streams: %s", len(chunk), exc)
                replies = [exc] * len(chunk)
            for channel, reply in zip(chunk, replies, strict=True):
                channel.heard_at = time.monotonic()
                try:
                    if isinstance(reply, Exception):
                        raise reply
                    entries = _entries(reply)
                except (RedisError, OSError, KeyError, ValueError) as exc:
                    if reconnected or not isinstance(exc, (RedisError, OSError)):
                        for reader in list(channel.readers):
                            self._end(reader, _unavailable(exc))
                    continue  # a quiet stream's reader has missed nothing yet: next time
                held = {position for position, _ in entries}
                for reader in list(channel.readers):
                    if not reconnected:
                        reader._feed(entries)
                    elif reader.anchored and reader.cursor not in held:
                        self._end(reader, _unavailable("its stream lost what this reader read"))
                    else:
                        reader._caught_up(entries)

    # ---- stopping ---------------------------------------------------------------------

    async def close(self, reason: str, draining: bool = True) -> None:
        self._closed = HubClosed(reason, draining)
        self._fail_all(self._closed)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.disconnect(nowait=True)

    def _fail_all(self, reason: HubClosed) -> None:
        """Every current reader is told; new ones may subscribe again."""
        for channel in self._channels.values():
            for subscription in channel.readers:
                subscription._close(reason)
        self._channels.clear()
