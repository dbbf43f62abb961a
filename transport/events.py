"""An answer's events: typed here, kept in one Redis Stream per chat job, relayed by the API.

Events, in their order: `Start`, `Citations`, any number of `Delta`, then `End` or `Error`;
`Restart` when an answer starts over on another worker (clients drop what they showed);
`Reconnect`, which an API process sends itself when it shuts down and never stores.

Stream ids are the events' ids, so a client resuming with Last-Event-ID reads on from exactly
where it was. A stream is capped and expires STREAM_RETENTION_SECONDS after its last event; a
job is cancelled by setting its cancel key, which its worker polls.

The stream is the record; the job's pub/sub channel carries its live tail. There is one
writer, `append`, which queues events on a Redis pipeline, synchronous (the workers'
`EventWriter`) or asynchronous (the API's `publish`): each event is added to the stream and
published with the id the stream gave it, in one script, so the channel's order is the
stream's. One reader, `stored_events`, turns what XRANGE returns into `StoredEvent`s
(`transport/hub.py` reads the channel): their `data` goes to clients as it was written, and
`.event` decodes it to the types below.

A job's keys and channel share the hash tag `{job id}`: in a Redis Cluster they sit on one
slot, so one node holds the stream and carries its channel, and a script may touch both.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import ConnectionError, TimeoutError

log = logging.getLogger("docuchat.transport")

# Far above any answer's event count; a cap only so a runaway writer cannot fill Redis.
STREAM_MAXLEN = 100_000
STREAM_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")  # ASCII digits: Redis reads no others
# Redis keeps both halves of an id in 64 bits: a larger one is refused by every command.
MAX_ID_PART = 2**64 - 1
# Pieces of text arriving within this long of the last write go out together.
DELTA_BATCH_SECONDS = 0.005
# How often a worker looks at its job's cancel key while the provider is silent.
CANCEL_POLL_SECONDS = 0.2
# A write Redis did not take is sent again after this pause, doubling up to the maximum.
OUTAGE_PAUSE_SECONDS = 0.2
MAX_OUTAGE_PAUSE_SECONDS = 2.0


class Usage(msgspec.Struct, frozen=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int) -> Usage:
        return cls(prompt_tokens, completion_tokens, prompt_tokens + completion_tokens)


NOTHING_SPENT = Usage(0, 0, 0)


class Citation(msgspec.Struct, frozen=True, omit_defaults=True):
    """A source of an answer. For a format without pages (Word, HTML, Markdown, text) the
    pages are its sections of about 4,000 characters, numbered from 1 in reading order, and
    `section` names the heading they fall under (absent when there is none, as for PDFs)."""

    n: int
    document_id: str
    filename: str
    page_start: int
    page_end: int
    chunk_id: str
    section: str | None = None


class _Event(msgspec.Struct, frozen=True, tag_field="event"):
    pass


class Start(_Event, frozen=True, tag="start"):
    job_id: str
    session_id: str
    message_id: str  # the answer's
    model: str


class Citations(_Event, frozen=True, tag="citations"):
    items: list[Citation]  # sent as the bare list


class Delta(_Event, frozen=True, tag="delta"):
    text: str


class End(_Event, frozen=True, tag="end"):
    finish_reason: str  # stop | length | cancelled | ...
    usage: Usage


class Error(_Event, frozen=True, tag="error"):
    code: str  # provider_unavailable | provider_rejected | internal_error | stream_... | ...
    message: str
    usage: Usage = NOTHING_SPENT


class Restart(_Event, frozen=True, tag="restart"):
    reason: str


class Reconnect(_Event, frozen=True, tag="reconnect"):
    reason: str


AnswerEvent = Start | Citations | Delta | End | Error | Restart | Reconnect
TERMINAL = ("end", "error")
STREAM_LOST = "the answer's stream was lost (Redis restarted empty); here it is again"
CANCELLED = End("cancelled", NOTHING_SPENT)


def name_of(event: AnswerEvent) -> str:
    return str(event.__struct_config__.tag)


def data_of(event: AnswerEvent) -> bytes:
    """What a client gets in `data`: the event's fields as JSON (citations: the bare list)."""
    fields: dict[str, Any] = msgspec.to_builtins(event)
    del fields["event"]
    return msgspec.json.encode(fields["items"] if isinstance(event, Citations) else fields)


def decode(name: str, data: bytes | str) -> AnswerEvent:
    fields = msgspec.json.decode(data)
    if name == "citations":
        fields = {"items": fields}
    return msgspec.convert({**fields, "event": name}, AnswerEvent)


@dataclass(frozen=True)
class StoredEvent:
    """An event as its stream keeps it."""

    id: str
    name: str
    data: bytes  # JSON, sent to clients as it is

    @property
    def terminal(self) -> bool:
        return self.name in TERMINAL

    @property
    def event(self) -> AnswerEvent:
        return decode(self.name, self.data)


def stored_events(entries: Iterable[tuple[bytes, dict[bytes, bytes]]]) -> list[StoredEvent]:
    """The reader: one stream's entries, as XRANGE returns them."""
    return [
        StoredEvent(entry_id.decode(), fields[b"event"].decode(), fields[b"data"])
        for entry_id, fields in entries
    ]


def parse_stream_id(text: str) -> tuple[int, int] | None:
    """A stream id as Redis orders it (milliseconds, sequence), or None when Redis would
    refuse it: not two decimal numbers joined by a dash, or either past 64 bits."""
    matched = STREAM_ID.fullmatch(text)
    if matched is None:
        return None
    parsed = int(matched[1]), int(matched[2])
    return parsed if max(parsed) <= MAX_ID_PART else None


def format_stream_id(parsed: tuple[int, int]) -> str:
    """An id as Redis writes it: what is passed on, never the client's own spelling."""
    return f"{parsed[0]}-{parsed[1]}"


def stream_key(job_id: uuid.UUID | str) -> str:
    return f"docuchat:job:{{{job_id}}}:events"


def live_channel(key: str) -> str:
    """The channel that carries what is added to the stream `key`: the same name, `live`
    for `events`, so the same hash tag."""
    return key.removesuffix(":events") + ":live"


def cancel_key(job_id: uuid.UUID | str) -> str:
    return f"docuchat:job:{{{job_id}}}:cancel"


def written_key(job_id: uuid.UUID | str) -> str:
    """The last event a worker's writer added to the job's stream (its id and number)."""
    return f"docuchat:job:{{{job_id}}}:written"


def parse_live_message(message: bytes) -> tuple[bytes, str, bytes]:
    """A channel's message (`<stream id> <name> <data>`, as the script below publishes it):
    the stream id, the event's name and its data; ValueError when it is not one."""
    stream_id, name, data = message.split(b" ", 2)
    return stream_id, name.decode(), data


# Each event added and published at once: a reader that saw the id live finds it in the stream.
# A worker's writer marks its events with its own id and a sequence number, and an event the
# mark says was added already is skipped: a write sent again after a timeout (Redis frozen,
# the first copy still in its socket) adds nothing twice. When the mark is gone, so is what it
# marked (Redis restarted empty): the script adds nothing and returns -1.
_APPEND_AND_PUBLISH = """
local stream, mark, channel = KEYS[1], KEYS[2], ARGV[1]
local writer, first = ARGV[4], tonumber(ARGV[5])
local skip = 0
if writer ~= '' then
  local last = redis.call('GET', mark)
  if last then
    local by, seq = string.match(last, '^(.*) (%d+)$')
    if by == writer then skip = tonumber(seq) - first + 1 end
  elseif first > 1 then
    return -1  -- what this writer added is gone (Redis restarted empty): it starts over
  end
end
local n = 0
for i = 6, #ARGV, 2 do
  if n >= skip then
    local id = redis.call('XADD', stream, 'MAXLEN', '~', ARGV[3], '*',
                          'event', ARGV[i], 'data', ARGV[i + 1])
    redis.call('PUBLISH', channel, id .. ' ' .. ARGV[i] .. ' ' .. ARGV[i + 1])
  end
  n = n + 1
end
if writer ~= '' and n > skip then
  redis.call('SET', mark, writer .. ' ' .. (first + n - 1), 'EX', ARGV[2])
end
redis.call('EXPIRE', stream, ARGV[2])
return n - skip
"""


def append(
    pipe: Any,
    job_id: uuid.UUID,
    events: Iterable[AnswerEvent],
    retention: int,
    mark: tuple[str, int] | None = None,
) -> None:
    """The writer: queue these events (added to the stream and published on its channel)
    and the stream's new expiry, as one command on a pipeline of either client (a pipeline's
    commands only queue, whichever client made it). `mark` (a writer's id and the sequence
    number of the first event) makes sending the same events again add nothing."""
    key = stream_key(job_id)
    writer, first = mark or ("", 0)
    fields: list[str | bytes | int] = [live_channel(key), retention, STREAM_MAXLEN, writer, first]
    for event in events:
        fields += [name_of(event), data_of(event)]
    pipe.eval(_APPEND_AND_PUBLISH, 2, key, written_key(job_id), *fields)


async def publish(
    redis: AsyncRedis, job_id: uuid.UUID, retention_seconds: int, *events: AnswerEvent
) -> None:
    """Append events from the API (the start of a job, the end of a cancelled one)."""
    pipe = redis.pipeline(transaction=False)
    append(pipe, job_id, events, retention_seconds)
    await pipe.execute()


async def request_cancel(redis: AsyncRedis, job_ids: list[uuid.UUID], ttl_seconds: int) -> None:
    """Tell the workers running these jobs to stop (they poll the key)."""
    if job_ids:
        pipe = redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.set(cancel_key(job_id), b"1", ex=ttl_seconds)
        await pipe.execute()


async def forget_streams(
    redis: AsyncRedis, finished: list[uuid.UUID], unfinished: list[uuid.UUID], grace: int
) -> None:
    """The streams of deleted jobs: a finished one goes at once; an unfinished one gets its
    `End` (cancelled) for the readers following it, and goes `grace` seconds later."""
    pipe = redis.pipeline(transaction=False)
    for job_id in finished:
        pipe.delete(stream_key(job_id))
    for job_id in unfinished:
        append(pipe, job_id, [CANCELLED], grace)
    await pipe.execute()


class EventWriter:
    """A worker's writer for one job's stream. The first piece of text goes out at once;
    pieces arriving within DELTA_BATCH_SECONDS of the last write go out together, so a fast
    model costs Redis one write per few milliseconds, not one per token. Every write also
    reads the job's cancel key, and `poll_cancelled` reads it while the provider is silent.

    When Redis does not answer (frozen, restarting) a write is tried again, the same events
    with the same numbers, for up to `outage_seconds`, so the answer goes on where it was once
    Redis is back and its readers get the rest; past that the write raises."""

    def __init__(
        self,
        redis: Redis,
        job_id: uuid.UUID,
        retention_seconds: int,
        outage_seconds: float = 0.0,
    ) -> None:
        self._redis = redis
        self._job_id = job_id
        self._cancel_key = cancel_key(job_id)
        self._retention = retention_seconds
        self._outage_seconds = outage_seconds
        self._id = uuid.uuid4().hex
        self._written = 0  # the number of the last event Redis confirmed
        self._unsent: list[AnswerEvent] = []  # numbered from _written + 1
        self._added: list[AnswerEvent] = []  # what Redis confirmed, since the last `Restart`
        self._pending: list[str] = []
        self._last_write = 0.0
        self._last_poll = 0.0
        self.cancelled = False

    def emit(self, event: AnswerEvent) -> None:
        """Write an event now, after any text still waiting."""
        self._write([*self._delta_events(), event])

    def delta(self, text: str) -> None:
        self._pending.append(text)
        if time.monotonic() - self._last_write >= DELTA_BATCH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._write(self._delta_events())

    def discard(self) -> None:
        """Delete the stream: its job is gone, nobody may read it again."""
        self._pending = []
        self._redis.delete(stream_key(self._job_id))

    @property
    def waiting(self) -> bool:
        return bool(self._pending)

    def wait_budget(self) -> float:
        """How long the caller may wait for more text before it must flush or poll."""
        if self._pending:
            return max(0.0, DELTA_BATCH_SECONDS - (time.monotonic() - self._last_write))
        return CANCEL_POLL_SECONDS

    def poll_cancelled(self) -> bool:
        if not self.cancelled and time.monotonic() - self._last_poll >= CANCEL_POLL_SECONDS:
            self._last_poll = time.monotonic()
            try:
                self.cancelled = bool(self._redis.exists(self._cancel_key))
            except (ConnectionError, TimeoutError) as exc:  # the next write waits for Redis
                log.debug("could not read the cancel key of job %s: %s", self._job_id, exc)
        return self.cancelled

    def _delta_events(self) -> list[AnswerEvent]:
        if not self._pending:
            return []
        text, self._pending = "".join(self._pending), []
        return [Delta(text)]

    def _write(self, events: list[AnswerEvent]) -> None:
        self._unsent += events
        deadline = time.monotonic() + self._outage_seconds
        pause = OUTAGE_PAUSE_SECONDS
        while True:
            try:
                cancelled = self._send()
                break
            except (ConnectionError, TimeoutError) as exc:
                if time.monotonic() + pause > deadline:
                    raise
                log.warning("job %s waits for Redis to write its events: %s", self._job_id, exc)
                time.sleep(pause)
                pause = min(2 * pause, MAX_OUTAGE_PAUSE_SECONDS)
        self._last_write = self._last_poll = time.monotonic()
        self.cancelled = self.cancelled or cancelled

    def _send(self) -> bool:
        """Add the unsent events; returns whether the job is cancelled. When Redis lost what
        was added before (it restarted empty), the answer so far is added again after a
        `Restart`, so that readers who resume drop what they showed and miss nothing."""
        pipe = self._redis.pipeline(transaction=False)
        append(pipe, self._job_id, self._unsent, self._retention, (self._id, self._written + 1))
        pipe.exists(self._cancel_key)
        added, cancelled = pipe.execute()
        if added == -1:
            log.warning(
                "Redis lost the events of job %s; its answer so far goes again", self._job_id
            )
            self._unsent = [Restart(STREAM_LOST), *self._added, *self._unsent]
            self._written, self._added = 0, []
            return self._send()
        self._written += len(self._unsent)
        self._added += [event for event in self._unsent if not isinstance(event, Restart)]
        self._unsent = []
        return bool(cancelled)
