"""Signed approvals (DESIGN.md rule 1, issue 9): a device's decision counts only with its valid signature.

A relay, or anyone holding only the URL or the account, cannot forge one: each case below
would answer the agent if the core accepted unsigned, misdirected, stale or foreign
decisions. The terminal's typed decisions need no signature.
"""

from __future__ import annotations

from tests.unit.test_core_session import DEVICE, WALL, Driver, of
from tether.host.core import effects as fx
from tether.host.core import events as ev
from tether.protocol.messages import Decide, Prompt
from tether.protocol.signing import DeviceKey


def refused(out: list[fx.Effect]) -> bool:
    texts = [s.message.entry.get("text", "") for s in of(fx.Show, out) if hasattr(s.message, "entry")]
    return not of(fx.Answer, out) and any("was refused" in t for t in texts)


def test_a_signed_decision_answers_the_agent_and_is_audited() -> None:
    drive = Driver().ready().turn()
    approval = drive.ask()
    out = drive.decide(approval, "allow")
    assert [fx.Answer(1, "allow")] == of(fx.Answer, out)
    (audit,) = of(fx.Audit, out)
    assert (approval, "allow", f"test phone ({DEVICE.id})") == (
        audit.record["approval"], audit.record["outcome"], audit.record["by"])  # fmt: skip
    assert 64 == len(str(audit.record["shown_sha256"]))


def test_an_unsigned_decision_from_a_device_is_refused() -> None:
    drive = Driver().ready().turn()
    approval = drive.ask()
    out = drive(ev.FromScreen("viewer", Decide(approval_id=approval, option_id="allow"), WALL))
    assert refused(out)
    assert 1 == drive.core.refused_decisions


def test_the_terminal_needs_no_signature() -> None:
    drive = Driver().ready().turn()
    approval = drive.ask()
    out = drive(ev.FromScreen("terminal", Decide(approval_id=approval, option_id="allow")))
    assert [fx.Answer(1, "allow")] == of(fx.Answer, out)


def test_a_signature_by_another_key_is_refused() -> None:
    drive = Driver().ready().turn()
    approval = drive.ask()
    assert refused(drive.decide(approval, "allow", key=DeviceKey("intruder")))


def test_a_signature_for_another_option_is_refused() -> None:
    drive = Driver().ready().turn()
    approval = drive.ask()
    approval_entry = drive.core.transcript.entries[approval]
    expires = int(WALL * 1000) + 60_000
    signature = DEVICE.sign("s" * 22, approval_entry, None, "reject", expires)
    assert refused(drive.decide(approval, "allow", signature=signature, expires=expires))


def test_an_approval_replayed_for_another_tool_call_is_refused() -> None:
    drive = Driver().ready().turn()
    first = drive.ask(1)
    drive.decide(first, "allow")
    second = drive.ask(2)
    # The signature the device made for the first request, sent again for the second.
    first_entry = drive.core.transcript.entries[first]
    expires = int(WALL * 1000) + 60_000
    tool_call = drive.core.transcript.entries.get(first_entry["tool_call_id"])
    signature = DEVICE.sign("s" * 22, first_entry, tool_call, "allow", expires)
    assert refused(drive.decide(second, "allow", signature=signature, expires=expires))


def test_a_changed_request_is_refused() -> None:
    """The device signs what it was shown; if the tool call changed meanwhile, the signature no longer matches."""
    drive = Driver().ready().turn()
    approval = drive.ask()
    entry = dict(drive.core.transcript.entries[approval])
    entry["title"] = "Write something else"
    expires = int(WALL * 1000) + 60_000
    tool_call = drive.core.transcript.entries.get(entry["tool_call_id"])
    signature = DEVICE.sign("s" * 22, entry, tool_call, "allow", expires)
    assert refused(drive.decide(approval, "allow", signature=signature, expires=expires))


def test_an_expired_or_too_long_signature_is_refused() -> None:
    drive = Driver().ready().turn()
    approval = drive.ask()
    entry = drive.core.transcript.entries[approval]
    tool_call = drive.core.transcript.entries.get(entry["tool_call_id"])
    for expires in (int(WALL * 1000) - 120_000, int(WALL * 1000) + 3_600_000):
        signature = DEVICE.sign("s" * 22, entry, tool_call, "allow", expires)
        assert refused(drive.decide(approval, "allow", signature=signature, expires=expires))


def test_a_reused_decision_changes_nothing() -> None:
    drive = Driver().ready().turn()
    approval = drive.ask()
    entry = drive.core.transcript.entries[approval]
    tool_call = drive.core.transcript.entries.get(entry["tool_call_id"])
    expires = int(WALL * 1000) + 60_000
    signature = DEVICE.sign("s" * 22, entry, tool_call, "reject", expires)
    drive.decide(approval, "reject", signature=signature, expires=expires)
    again = drive.decide(approval, "reject", signature=signature, expires=expires)
    assert [] == of(fx.Answer, again) and [] == of(fx.Audit, again)


def test_a_gone_or_revoked_device_can_no_longer_decide() -> None:
    drive = Driver().ready().turn()
    approval = drive.ask()
    drive(ev.DeviceGone("viewer"))
    assert refused(drive.decide(approval, "allow"))


def test_every_decision_is_audited_including_timeouts() -> None:
    drive = Driver(timeout=5).ready().turn()
    drive.ask()
    drive.now += 10
    out = drive(ev.Tick())
    (audit,) = of(fx.Audit, out)
    assert "expired" == audit.record["state"]


def test_a_prompt_from_a_device_names_it() -> None:
    """The terminal can say which device a prompt came from (the entry keeps ``by`` for the screen)."""
    drive = Driver().ready()
    out = drive(ev.FromScreen("viewer", Prompt(text="hello")))
    (user,) = [s.message.entry for s in of(fx.Show, out) if getattr(s.message, "entry", {}).get("role") == "user"]
    assert ("viewer", f"test phone ({DEVICE.id})") == (user["by"], user["device"])
