"""Coming back: a viewer gets only what it missed, every prompt runs once, every decision applies once (issue 10).

Pure: the session core and its journal with a fixed clock, the viewer's side folded by
tether.testing.Mirror, the same code the scripted viewer uses over a real relay.
"""

from __future__ import annotations

from typing import Any

import pytest
from acp import schema
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.test_core_session import Driver, of, shown
from tether.errors import RemoteProtocolError
from tether.host.core import effects as fx
from tether.host.core import events as ev
from tether.host.core.journal import Journal, RecentIds
from tether.protocol.messages import Append, Entry, Hello, Message, Prompt, Replay, Snapshot, Turn, parse
from tether.testing import Mirror


def chunk(text: str) -> ev.AgentUpdate:
    content = schema.TextContentBlock(type="text", text=text)
    return ev.AgentUpdate(schema.AgentMessageChunk(session_update="agent_message_chunk", content=content))


def tool(call_id: str, status: Any) -> ev.AgentUpdate:
    title = f"step {call_id}"
    return ev.AgentUpdate(
        schema.ToolCallStart(session_update="tool_call", tool_call_id=call_id, title=title, kind="edit", status=status)
    )


def to_viewer(effects: list[fx.Effect]) -> list[Message]:
    """What the relay link would deliver to the viewer, through the wire format (serialize, parse)."""
    out = []
    for effect in of(fx.Show, effects):
        if effect.to in (None, "viewer"):
            message = parse(effect.message.serialize())
            assert message is not None
            out.append(message)
    return out


def hello(mirror: Mirror | None = None) -> ev.FromScreen:
    if mirror is None:
        return ev.FromScreen("viewer", Hello(client="t"))
    return ev.FromScreen("viewer", Hello(client="t", since=mirror.at, run=mirror.run))


def host_entries(drive: Driver) -> dict[str, Any]:
    return {key: dict(value) for key, value in drive.core.transcript.entries.items()}


def joined() -> tuple[Driver, Mirror]:
    drive = Driver().ready()
    mirror = Mirror()
    for message in to_viewer(drive(hello())):
        mirror.apply(message)
    return drive, mirror


def test_a_viewer_that_comes_back_gets_only_what_it_missed() -> None:
    """After a drop, hello.since brings a replay of the messages after it, not the whole transcript again."""
    drive, mirror = joined()
    events: list[ev.Event] = [ev.FromScreen("viewer", Prompt(text="write a long answer"))]
    for event in events + [chunk(word) for word in ("one ", "two ", "three ")]:
        for message in to_viewer(drive(event)):
            mirror.apply(message)
    seen = mirror.at
    drive(chunk("four "))  # lost on the way: the connection dropped
    drive(tool("c1", "pending"))
    drive(chunk("five"))

    (answer,) = to_viewer(drive(hello(mirror)))
    assert isinstance(answer, Replay) and seen == answer.since
    assert 3 == len(answer.messages)  # not the whole transcript: only what came after
    mirror.apply(answer)
    assert host_entries(drive) == mirror.entries
    assert (1, [3]) == (mirror.snapshots, mirror.replays)


def test_a_streamed_answer_missed_replays_as_one_append() -> None:
    """Consecutive appends to one message come back as one, numbered as the last: the same text, fewer bytes."""
    drive, mirror = joined()
    for message in to_viewer(drive(chunk("start "))):
        mirror.apply(message)
    since = mirror.at
    for word in range(50):
        drive(chunk(f"w{word} "))
    (answer,) = to_viewer(drive(hello(mirror)))
    assert isinstance(answer, Replay) and 1 == len(answer.messages) and since is not None
    assert {"kind": "append", "n": since + 50} == {k: answer.messages[0][k] for k in ("kind", "n")}
    mirror.apply(answer)
    assert host_entries(drive) == mirror.entries and drive.core.journal.head == mirror.at


def test_a_viewer_with_everything_gets_an_empty_replay_and_live_messages_go_on_counting() -> None:
    """Nothing missed: an empty replay; later messages continue the numbering; a duplicate is ignored."""
    drive, mirror = joined()
    (answer,) = to_viewer(drive(hello(mirror)))
    assert isinstance(answer, Replay) and [] == answer.messages and mirror.at == answer.at
    (append,) = to_viewer(drive(ev.Notice("hello")))
    mirror.apply(append)
    mirror.apply(append)  # the same message twice (a resend): applied once
    assert 1 == mirror.duplicates and host_entries(drive) == mirror.entries


def test_the_whole_transcript_with_a_reason_when_the_journal_cannot_replay() -> None:
    """A count ahead of this run, another run's count, or one older than the journal keeps: a snapshot saying why."""
    drive, mirror = joined()
    ahead = Hello(client="t", since=mirror.at + 5 if mirror.at is not None else 5, run=mirror.run)
    other = Hello(client="t", since=0, run="another run")
    for asked, reason in ((ahead, "ahead"), (other, "run")):
        (answer,) = to_viewer(drive(ev.FromScreen("viewer", asked)))
        assert isinstance(answer, Snapshot) and reason == answer.reset and drive.core.journal.head == answer.at

    drive.core.journal.max_messages = 4  # a small journal: older changes are forgotten
    for index in range(10):
        drive(ev.Notice(f"notice {index}"))
    (answer,) = to_viewer(drive(hello(mirror)))
    assert isinstance(answer, Snapshot) and "behind" == answer.reset
    mirror.apply(answer)
    assert host_entries(drive) == mirror.entries


def test_the_journal_is_bounded_in_messages_and_bytes() -> None:
    """Past MAX_MESSAGES or MAX_BYTES the oldest numbered messages go; the numbering goes on."""
    journal = Journal("r", max_messages=100, max_bytes=10_000)
    for _ in range(1000):
        journal.record(Append(id="m1", text="x" * 50))
        assert len(journal._kept) <= 100 and journal._bytes <= 10_000
    assert 1000 == journal.head and "behind" == journal.since(journal.base - 1, "r")
    kept = journal.since(journal.base, "r")
    assert isinstance(kept, list) and [m.n for m in kept] == list(range(journal.base + 1, 1001))  # type: ignore[attr-defined]
    assert Hello() == journal.record(Hello())  # not a transcript change: not numbered


def test_a_prompt_sent_again_with_its_id_runs_once() -> None:
    """The viewer cannot know whether a prompt sent just before a drop arrived: sent again, it runs once."""
    drive = Driver().ready()
    prompt = Prompt(text="deploy it", id="p-1")
    first = drive(ev.FromScreen("viewer", prompt))
    again = drive(ev.FromScreen("viewer", prompt))
    assert [fx.StartTurn("deploy it")] == of(fx.StartTurn, first) and [] == of(fx.StartTurn, again)
    drive(ev.TurnEnded("end_turn"))
    assert [] == of(fx.StartTurn, drive(ev.FromScreen("viewer", prompt)))  # also after its turn ended
    users = [e for e in drive.core.transcript.entries.values() if e.get("role") == "user"]
    assert 1 == len(users)
    (answer,) = to_viewer(drive(hello()))
    assert isinstance(answer, Snapshot) and ["p-1"] == answer.received  # so the viewer stops sending it


def test_prompt_ids_are_remembered_within_a_bound() -> None:
    """The memory of prompt ids is bounded; the newest are kept."""
    ids = RecentIds(limit=3)
    assert all(ids.add(item) for item in "abcd")
    assert not ids.add("d") and ["b", "c", "d"] == ids.newest() and ids.add("a")


def test_a_decision_sent_again_is_applied_once() -> None:
    """A signed decision resent after a reconnection changes nothing the second time: one answer, one audit."""
    drive = Driver().ready().turn("go")
    approval = drive.ask()
    first = drive.decide(approval, "allow")
    again = drive.decide(approval, "allow")
    assert [fx.Answer(1, "allow")] == of(fx.Answer, first) and [] == of(fx.Answer, again)
    assert 1 == len(of(fx.Audit, first)) and [] == of(fx.Audit, again) and [] == shown(again)
    assert 0 == drive.core.refused_decisions


# One step of the host's life, or the viewer's connection dropping and coming back.
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("chunk"), st.text(alphabet="ab ", min_size=1, max_size=4)),
        st.tuples(st.just("tool"), st.sampled_from(["c1", "c2", "c3"]), st.sampled_from(["pending", "completed"])),
        st.tuples(st.just("notice"), st.text(alphabet="xy", min_size=1, max_size=3)),
        st.tuples(st.just("turn"), st.sampled_from(["start", "end"])),
        st.tuples(st.just("drop"), st.booleans()),
        st.tuples(st.just("rejoin"), st.booleans()),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(steps=STEPS, journal_size=st.sampled_from([3, 50]))
def test_any_schedule_of_drops_ends_with_the_hosts_transcript_exactly(steps: list[Any], journal_size: int) -> None:
    """Whatever the host does while the viewer drops and rejoins, the viewer ends with the host's transcript,
    each change applied once; a replay whenever the journal still has the viewer's point."""
    drive, mirror = joined()
    drive.core.journal.max_messages = journal_size
    connected = True
    for step in steps:
        effects: list[fx.Effect] = []
        match step:
            case ("chunk", text):
                effects = drive(chunk(text))
            case ("tool", call_id, status):
                effects = drive(tool(call_id, status))
            case ("notice", text):
                effects = drive(ev.Notice(text))
            case ("turn", "start"):
                effects = drive(ev.FromScreen("terminal", Prompt(text="go")))
            case ("turn", "end"):
                effects = drive(ev.TurnEnded("end_turn"))
            case ("drop", _):
                connected = False
            case ("rejoin", _):
                connected, effects = True, drive(hello(mirror))
        for message in to_viewer(effects) if connected else []:
            mirror.apply(message)
    for message in to_viewer(drive(hello(mirror))):
        mirror.apply(message)
    assert host_entries(drive) == mirror.entries
    assert (drive.core.phase.value == "turn_running") == mirror.running
    rejoins = sum(1 for step in steps if step[0] == "rejoin")
    assert 0 == mirror.duplicates and 2 + rejoins == mirror.snapshots + len(mirror.replays)
    if journal_size > drive.core.journal.head:  # the journal never forgot anything: no whole transcript again
        assert 1 == mirror.snapshots


def test_numbered_messages_keep_their_wire_form_and_older_peers_see_none_of_it() -> None:
    """``n`` is an optional field: a message without it is what it always was, and equal with or without it."""
    assert b'{"kind":"turn","running":true,"stop_reason":null}' == Turn(running=True).serialize()
    assert Turn(running=True) == Turn(running=True, n=7)
    numbered = parse(Entry(entry={"id": "m1", "type": "message"}, n=3).serialize())
    assert isinstance(numbered, Entry) and 3 == numbered.n


def test_the_new_fields_round_trip_and_bad_ones_are_remote_errors() -> None:
    """hello.since/run, prompt.id, a replay and a snapshot's at/run/received/reset survive the wire; a replay of
    anything but numbered transcript messages, or an oversized prompt id, is refused as the peer's fault."""
    replay = Replay(session={"title": "t"}, since=3, at=4, run="r", messages=[Append(id="m1", text="x", n=4).to_json()],
                    running=True, received=["p-1"])  # fmt: skip
    snapshot = Snapshot(session={}, at=4, run="r", received=["p-1"], reset="behind")
    for message in (Hello(client="t", since=3, run="r"), Prompt(text="x", id="p-1"), replay, snapshot):
        assert message.to_json() == parse(message.serialize()).to_json()  # type: ignore[union-attr]
    assert [Append(id="m1", text="x")] == replay.parsed() and 4 == replay.parsed()[0].n  # type: ignore[attr-defined]
    for bad in (
        b'{"kind":"replay","session":{},"since":0,"at":1,"run":"r","messages":[{"kind":"ended","reason":"x"}],'
        b'"running":false,"received":[]}',
        b'{"kind":"replay","session":{},"since":0,"at":1,"run":"r","messages":[{"kind":"append","id":"m1",'
        b'"text":"x"}],"running":false,"received":[]}',
        b'{"kind":"prompt","text":"x","id":"' + b"p" * 65 + b'"}',
    ):
        with pytest.raises(RemoteProtocolError):
            parse(bad)
