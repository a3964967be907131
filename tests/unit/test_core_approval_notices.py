"""What a device is told about its approvals beyond the transcript (issue 12): the time left, and a refusal.

Pure: the session core with a fixed clock. A screen that joins late (a reload, a second
device, a viewer coming back) learns how long each pending approval still waits, as a
figure relative to when the host sent it (host and phone clocks differ); a device whose
decision the host refuses hears which approval, why, and when to tap again.
"""

from __future__ import annotations

from typing import TypeVar

from tests.unit.test_core_session import Driver, of
from tests.unit.test_grants import ask_command, driver
from tether.host.core import effects as fx
from tether.host.core import events as ev
from tether.host.core import policy
from tether.protocol.messages import Entry, Hello, Message, Refused, Replay, Snapshot, parse
from tether.protocol.signing import DeviceKey

M = TypeVar("M", bound=Message)


def sent(effects: list[fx.Effect], kind: type[M]) -> list[tuple[str | None, M]]:
    """(to which screen, message) of each message of one kind sent, checked through the wire format."""
    found = [(e.to, e.message) for e in of(fx.Show, effects) if isinstance(e.message, kind)]
    for _, message in found:
        assert message == parse(message.serialize())
    return found


def joined(d: Driver, hello: Hello, kind: type[M]) -> M:
    """What a screen saying ``hello`` is sent."""
    ((_, message),) = sent(d(ev.FromScreen("viewer", hello)), kind)
    return message


def refusal(effects: list[fx.Effect]) -> tuple[str | None, Refused]:
    """The one refusal sent, and to which screen."""
    (found,) = sent(effects, Refused)
    return found


def test_a_screen_that_joins_late_is_told_the_time_left() -> None:
    """Snapshot and replay carry each pending approval's seconds left at send time; the entry stays as signed."""
    d = Driver(timeout=600).ready().turn()
    first = d.ask(1)
    head = d.core.journal.head
    kept = d.core.journal.since(0, d.core.journal.run)
    opened = [m.entry for m in kept if isinstance(m, Entry)] if isinstance(kept, list) else []
    assert opened and all("remaining" not in e for e in opened)  # nothing computed at send time enters the journal
    d.now += 250
    second = d.ask(2)
    d.now += 100

    snapshot = joined(d, Hello(client="t"), Snapshot)
    assert {first: 250.0, second: 500.0} == snapshot.remaining
    entries = {e["id"]: e for e in snapshot.entries}
    assert 600 == entries[first]["timeout"] and "remaining" not in entries[first]  # what the device signs is unchanged

    replay = joined(d, Hello(client="t", since=head, run=d.core.journal.run), Replay)
    assert {first: 250.0, second: 500.0} == replay.remaining  # the replayed entry of `second` is stale
    assert all("remaining" not in m.get("entry", {}) for m in replay.messages)

    d.decide(first, "allow")
    d.now += 600  # past its deadline, before the tick: none left, never negative
    assert {second: 0.0} == joined(d, Hello(client="t"), Snapshot).remaining
    d(ev.Tick())
    snapshot = joined(d, Hello(client="t"), Snapshot)
    assert snapshot.remaining is None and b"remaining" not in snapshot.serialize()  # left off when none


def test_a_refused_decision_is_answered_to_that_device_with_why_and_when() -> None:
    """Too soon after a risky approval, or a bad signature: the device alone hears which approval, why, and when."""
    d = driver()
    first = ask_command(d, "rm -rf build", 1)
    d.now += 1.0
    out = d.decide(first, "allow")
    assert [] == of(fx.Answer, out)
    to, refused = refusal(out)
    assert "viewer" == to and first == refused.approval_id
    assert "shown 3 s" in refused.reason and 2.0 == refused.retry  # the cooldown counts from its opening
    assert not hasattr(refused, "n")  # one device's notice: not a transcript change, never replayed

    d.now += 2.0
    assert [fx.Answer(1, "allow")] == of(fx.Answer, d.decide(first, "allow"))
    second = ask_command(d, "rm -rf dist", 2)
    d.now += 2.5  # shown long enough? no: 2.5 s; and 2.5 s after the last risky approval
    assert 0.5 == refusal(d.decide(second, "allow"))[1].retry

    _, refused = refusal(d.decide(second, "allow", key=DeviceKey("another phone")))
    assert "signature" in refused.reason and refused.retry is None  # tapping again would not help
    assert second == refused.approval_id and "pending" == d.core.transcript.entries[second]["state"]


def test_cooldown_left() -> None:
    """The seconds until a device's approval of a risky request counts: from its opening, and from the last one."""
    cool = policy.RISKY_COOLDOWN
    assert 1.0 == policy.cooldown_left("risky", opened=100.0, last_risky=None, now=100.0 + cool - 1.0)
    assert policy.cooldown_left("risky", opened=100.0, last_risky=None, now=100.0 + cool) is None
    assert 2.5 == policy.cooldown_left("risky", opened=100.0, last_risky=150.0, now=150.5)
    assert policy.cooldown_left("normal", opened=100.0, last_risky=99.9, now=100.0) is None
