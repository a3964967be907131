"""The terminal screen: agent text cannot drive the terminal, and lines are bounded."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console as RichConsole

from tether.host.console import Console
from tether.host.core.events import FromScreen
from tether.protocol.messages import Append, Decide, Entry, Prompt


def screen() -> tuple[Console, io.StringIO, list[FromScreen]]:
    buffer = io.StringIO()
    sent: list[FromScreen] = []
    out = RichConsole(file=buffer, force_terminal=False, width=100, color_system=None)
    return Console(sent.append, Path("/p"), out), buffer, sent


def test_escape_sequences_from_the_agent_are_shown_not_obeyed() -> None:
    """An agent cannot erase the OUTSIDE warning or fake a prompt: no ESC or CR reaches the terminal."""
    console, buffer, _ = screen()
    hostile = {"option_id": "ok", "name": "Allow\x1b]8;;http://x\x07", "kind": "allow_once"}
    approval = {"id": "approval-1", "type": "approval", "state": "pending", "source": "agent", "kind": "edit",
                "title": "Write /etc/x — OUTSIDE the project\x1b[1A\x1b[2K\rWrite notes.txt",
                "options": [hostile]}  # fmt: skip
    console.deliver(Entry(entry=approval))
    console.deliver(Append(id="m1", text="done\x1b[2J\x9b31m"))
    printed = buffer.getvalue()
    assert "\x1b" not in printed and "\r" not in printed and "\x9b" not in printed and "\x07" not in printed
    assert "OUTSIDE the project" in printed


def test_a_huge_word_prints_bounded() -> None:
    """A 100,000-character word costs one bounded line, not a frozen event loop."""
    console, buffer, _ = screen()
    console.deliver(Entry(entry={"id": "m1", "type": "message", "role": "system", "text": "x" * 100_000}))
    assert len(buffer.getvalue()) < 20_000 and "more characters" in buffer.getvalue()


def test_answers_and_prompts_go_through_the_session_door() -> None:
    """A pending approval is answered by kind from the messages seen; a line is a prompt otherwise."""
    console, _, sent = screen()
    options = [{"option_id": "a1", "name": "Allow", "kind": "allow_once"},
               {"option_id": "r1", "name": "Deny", "kind": "reject_once"}]  # fmt: skip
    console.deliver(Entry(entry={"id": "approval-1", "type": "approval", "state": "pending", "title": "t",
                                 "kind": "edit", "options": options}))  # fmt: skip
    assert console.answer("n")
    assert [FromScreen("terminal", Decide(approval_id="approval-1", option_id="r1"))] == sent
    decided = {"id": "approval-1", "type": "approval", "state": "decided", "title": "t", "kind": "edit",
               "options": options, "outcome": "r1", "decided_by": "terminal"}  # fmt: skip
    console.deliver(Entry(entry=decided))
    assert not console.answer("hello")
    console.send(Prompt(text="hello"))
    assert FromScreen("terminal", Prompt(text="hello")) == sent[-1]
