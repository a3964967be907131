"""The sans-IO protocol core: frames, message kinds, sequencing and fragmentation."""

from __future__ import annotations

import json

import pytest

from tether.errors import LocalProtocolError, RemoteProtocolError
from tether.protocol.channel import Channel
from tether.protocol.frames import HEADER_SIZE, MAX_FRAME_BYTES, Frame
from tether.protocol.messages import (
    BY_KIND,
    Append,
    Cancel,
    Decide,
    Ended,
    Entry,
    Hello,
    Kind,
    Prompt,
    Snapshot,
    Turn,
    parse,
)

EXAMPLES = [
    Hello(client="test"),
    Prompt(text="héllo ✓"),
    Decide(approval_id="ap-1", option_id="allow"),
    Cancel(),
    Snapshot(session={"title": "t"}, entries=[{"id": "m1", "type": "message", "role": "user", "text": "x"}]),
    Entry(entry={"id": "m1", "type": "message", "role": "agent", "text": ""}),
    Append(id="m1", text="more"),
    Turn(running=False, stop_reason="end_turn"),
    Ended(reason="bye"),
]


def test_every_kind_has_a_message_class() -> None:
    """The Kind enum and the parse table list the same closed set."""
    assert {str(k) for k in Kind} == set(BY_KIND)


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: str(m.KIND))
def test_messages_round_trip(message: object) -> None:
    """serialize then parse gives back an equal message."""
    assert message == parse(message.serialize())  # type: ignore[attr-defined]


def test_unknown_kind_parses_to_none() -> None:
    """A newer peer's kind is ignored, not an error."""
    assert parse(b'{"kind":"from-the-future","x":1}') is None


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"[1,2]", b'{"no":"kind"}', b'{"kind":"prompt"}', b'{"kind":"prompt","text":5}',
     b'{"kind":"turn","running":"yes"}', b'{"kind":"entry","entry":{"type":"message"}}',
     b'{"kind":"prompt","text":"x","extra":1}', b"\xff\xfe"],
)  # fmt: skip
def test_malformed_payloads_are_remote_errors(payload: bytes) -> None:
    """Garbage from the other side raises RemoteProtocolError, never anything else."""
    with pytest.raises(RemoteProtocolError):
        parse(payload)


def test_sending_a_bad_message_is_a_local_error() -> None:
    """A wrongly typed field on our side is our bug: LocalProtocolError."""
    with pytest.raises(LocalProtocolError):
        Prompt(text=5).serialize()  # type: ignore[arg-type]


def test_frame_layout() -> None:
    """The 10-byte header is version, flags, big-endian sequence number."""
    data = Frame(seq=258, payload=b"ab", more=True).serialize()
    assert bytes([1, 1, 0, 0, 0, 0, 0, 0, 1, 2]) + b"ab" == data
    assert Frame(seq=258, payload=b"ab", more=True) == Frame.parse(data)


@pytest.mark.parametrize("data", [b"", b"\x01\x00", bytes([2, 0]) + (1).to_bytes(8, "big"),
                                  bytes([1, 4]) + (1).to_bytes(8, "big"), bytes([1, 0]) + bytes(8)])  # fmt: skip
def test_malformed_frames_are_refused(data: bytes) -> None:
    """Short frames, unknown versions or flags, and sequence 0 are refused."""
    with pytest.raises(RemoteProtocolError):
        Frame.parse(data)


def test_channel_fragments_and_reassembles() -> None:
    """A message larger than the fragment size crosses in several frames, in order."""
    sender, receiver = Channel(fragment_size=16), Channel(fragment_size=16)
    message = Prompt(text="x" * 100)
    frames = sender.send(message)
    assert len(frames) > 1
    results = [receiver.receive(f) for f in frames]
    assert [None] * (len(frames) - 1) + [message] == results
    assert all(len(f) <= HEADER_SIZE + 16 for f in frames)


def test_channel_refuses_out_of_sequence_and_recovers() -> None:
    """A replayed or skipped frame is refused and the next right frame still works."""
    sender, receiver = Channel(), Channel()
    first, second = sender.send(Prompt(text="1"))[0], sender.send(Prompt(text="2"))[0]
    with pytest.raises(RemoteProtocolError):
        receiver.receive(second)
    assert Prompt(text="1") == receiver.receive(first)
    with pytest.raises(RemoteProtocolError):
        receiver.receive(first)
    assert Prompt(text="2") == receiver.receive(second)


def test_channel_limits_message_size() -> None:
    """Reassembly stops at the maximum message size."""
    sender, receiver = Channel(fragment_size=8), Channel(max_message_size=20)
    frames = sender.send(Prompt(text="y" * 40))
    with pytest.raises(RemoteProtocolError):
        for frame in frames:
            receiver.receive(frame)


def test_reset_starts_new_sequence_spaces() -> None:
    """After reset both directions start again at 1 (a new viewer connection)."""
    channel = Channel()
    channel.send(Prompt(text="a"))
    channel.reset()
    assert 1 == Frame.parse(channel.send(Prompt(text="b"))[0]).seq


def test_payload_is_json_with_kind_first() -> None:
    """The payload is plain JSON that a browser can read with JSON.parse."""
    payload = Frame.parse(Channel().send(Append(id="m1", text="é"))[0]).payload
    assert {"kind": "append", "id": "m1", "text": "é"} == json.loads(payload)


@pytest.mark.parametrize(
    "payload",
    [
        b"[" * 200_000,
        b'{"kind":"prompt","text":' + b"[" * 200_000,
        b'{"kind":"snapshot","session":' + b'{"a":' * 200_000,
    ],
    ids=["bare", "in-a-field", "objects"],
)
def test_deeply_nested_payloads_are_remote_errors(payload: bytes) -> None:
    """200,000 nested brackets from a viewer are a RemoteProtocolError, not a RecursionError."""
    with pytest.raises(RemoteProtocolError):
        parse(payload)


def test_a_payload_that_is_not_utf8_is_a_remote_error() -> None:
    """Payloads are UTF-8 JSON; the same JSON in UTF-16 is refused."""
    with pytest.raises(RemoteProtocolError):
        parse('{"kind":"prompt","text":"x"}'.encode("utf-16"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("half \ud83c", "half \ufffd"),
        ("\udf89 rest", "\ufffd rest"),
        ("\ud83c\udf89", "🎉"),
        ("a\ud800\ud800b", "a\ufffd\ufffdb"),
    ],
    ids=["high-at-end", "low-at-start", "pair-as-two-code-points", "two-highs"],
)
def test_lone_surrogates_serialize_as_replacement_characters(text: str, expected: str) -> None:
    """Half an emoji (split across two agent chunks) serializes as U+FFFD instead of raising; a pair joins."""
    assert Append(id="m1", text=expected) == parse(Append(id="m1", text=text).serialize())


def test_surrogates_anywhere_in_a_message_serialize() -> None:
    """Keys and nested values of a host message are cleaned the same way."""
    entry = Entry(entry={"id": "m1", "type": "message", "text": ["\ud800"], "\udc00": {"k": "\ud83c"}})
    assert {"id": "m1", "type": "message", "text": ["\ufffd"], "\ufffd": {"k": "\ufffd"}} == json.loads(
        entry.serialize()
    )["entry"]


@pytest.mark.parametrize("size", [0, MAX_FRAME_BYTES - HEADER_SIZE + 1])
def test_fragments_must_fit_a_frame(size: int) -> None:
    """A channel cannot be made to send frames larger than MAX_FRAME_BYTES, which relays refuse."""
    with pytest.raises(ValueError, match="fragment_size"):
        Channel(fragment_size=size)
