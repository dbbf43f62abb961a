"""The answer-stream protocol: typed events, written as the clients have always read them."""

from __future__ import annotations

import msgspec
import pytest

from transport import events

CITATION = events.Citation(1, "doc-id", "باغ.pdf", 2, 3, "chunk-id")
EVERY_EVENT: list[events.AnswerEvent] = [
    events.Start("job", "session", "message", "extractive"),
    events.Citations([CITATION]),
    events.Delta("کشاورزان انار می‌چینند "),
    events.End("stop", events.Usage.of(12, 3)),
    events.Error("provider_unavailable", "the provider broke off", events.Usage.of(12, 1)),
    events.Restart("the answer starts again"),
    events.Reconnect("this server is shutting down"),
]


@pytest.mark.parametrize("event", EVERY_EVENT, ids=lambda e: events.name_of(e))
def test_every_event_reads_back_as_itself(event: events.AnswerEvent) -> None:
    assert events.decode(events.name_of(event), events.data_of(event)) == event


def test_the_wire_format_is_the_one_clients_know() -> None:
    wire = {events.name_of(e): events.data_of(e).decode() for e in EVERY_EVENT}
    assert wire["start"] == (
        '{"job_id":"job","session_id":"session","message_id":"message","model":"extractive"}'
    )
    assert wire["citations"] == (
        '[{"n":1,"document_id":"doc-id","filename":"باغ.pdf","page_start":2,"page_end":3,'
        '"chunk_id":"chunk-id"}]'
    )  # a bare list, as the web page and the examples read it
    assert wire["end"] == (
        '{"finish_reason":"stop","usage":{"prompt_tokens":12,"completion_tokens":3,'
        '"total_tokens":15}}'
    )
    assert msgspec.json.decode(wire["error"])["code"] == "provider_unavailable"
    assert "event" not in wire["delta"]  # the name travels beside the data, not in it


def test_the_reader_turns_stream_entries_into_events() -> None:
    entries = [
        (b"1-0", {b"event": b"start", b"data": events.data_of(EVERY_EVENT[0])}),
        (b"1-1", {b"event": b"delta", b"data": b'{"text":"hi"}'}),
        (b"2-0", {b"event": b"end", b"data": events.data_of(EVERY_EVENT[3])}),
    ]
    stored = events.stored_events(entries)
    assert [s.id for s in stored] == ["1-0", "1-1", "2-0"]
    assert [s.terminal for s in stored] == [False, False, True]
    assert stored[1].event == events.Delta("hi")
    assert stored[1].data == b'{"text":"hi"}'  # relayed to clients exactly as written


def test_an_unknown_or_malformed_event_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError):
        events.decode("shout", b'{"text":"hi"}')
    with pytest.raises(msgspec.ValidationError):
        events.decode("end", b'{"finish_reason":"stop"}')  # no usage
