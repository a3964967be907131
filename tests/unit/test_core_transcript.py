"""The transcript folds ACP updates into entries and mirrors each change as a message."""

from __future__ import annotations

import acp
from acp import schema

from tether.host.core.transcript import MAX_TEXT, OUTPUT_KEPT, Transcript
from tether.protocol.messages import Append, Entry, Output


def test_streamed_chunks_coalesce_into_one_message() -> None:
    """Consecutive agent chunks become one entry plus appends."""
    transcript = Transcript()
    first = transcript.apply(acp.update_agent_message_text("Hel"))
    second = transcript.apply(acp.update_agent_message_text("lo"))
    assert isinstance(first[0], Entry) and isinstance(second[0], Append)
    assert [{"id": "m1", "type": "message", "role": "agent", "text": "Hello"}] == transcript.snapshot()


def test_tool_call_breaks_the_stream() -> None:
    """Text after a tool call starts a new message entry."""
    transcript = Transcript()
    transcript.apply(acp.update_agent_message_text("before"))
    transcript.apply(acp.start_tool_call("call-1", "Read a.txt", kind="read", status="pending"))
    transcript.apply(acp.update_agent_message_text("after"))
    assert ["message", "tool_call", "message"] == [e["type"] for e in transcript.snapshot()]


def test_tool_call_updates_merge() -> None:
    """An update changes only the fields it carries; diffs are rendered."""
    transcript = Transcript()
    transcript.apply(acp.start_edit_tool_call("c1", "Edit a.txt", path="a.txt", content="new"))
    transcript.apply(
        acp.update_tool_call("c1", status="completed", content=[acp.tool_diff_content("a.txt", "new", "old")])
    )
    entry = transcript.entries["tool:c1"]
    assert ("Edit a.txt", "completed") == (entry["title"], entry["status"])
    assert [{"type": "diff", "path": "a.txt", "old_text": "old", "new_text": "new"}] == entry["content"]


def test_terminal_output_goes_out_as_deltas_and_survives_release() -> None:
    """Output is appended as deltas to the tool call that shows it, and stays after the command ends."""
    transcript = Transcript()
    transcript.terminal_started("t1", "ls")
    transcript.apply(
        schema.ToolCallStart(
            session_update="tool_call", tool_call_id="c1", title="ls", kind="execute",
            content=[acp.tool_terminal_ref("t1")],
        )
    )  # fmt: skip
    first = transcript.terminal_output("t1", "a\n")
    second = transcript.terminal_output("t1", "b\n")
    assert [Output(id="tool:c1", terminal_id="t1", text="b\n")] == second and len(first) == 1
    transcript.terminal_exited("t1", 0)
    transcript.apply(acp.update_tool_call("c1", status="completed"))
    shown = transcript.entries["tool:c1"]["content"][0]
    assert ("ls", "a\nb\n", 0) == (shown["command"], shown["output"], shown["exit_code"])


def test_kept_output_is_bounded() -> None:
    """Screens keep only the newest OUTPUT_KEPT characters of a command that prints forever."""
    transcript = Transcript()
    transcript.terminal_started("t1", "yes")
    for _ in range(100):
        transcript.terminal_output("t1", "y" * 10_000)
    assert OUTPUT_KEPT == len(transcript.terminals["t1"].output) and transcript.terminals["t1"].truncated


def test_agent_updates_cannot_reach_host_entries() -> None:
    """A tool-call update named like a host entry (an approval id) lands in the agent's namespace."""
    transcript = Transcript()
    transcript.put({"id": "approval-1", "type": "approval", "title": "Write /etc/cron.d/evil"})
    transcript.apply(acp.update_tool_call("approval-1", title="Write notes.txt"))
    assert "Write /etc/cron.d/evil" == transcript.entries["approval-1"]["title"]
    assert "Write notes.txt" == transcript.entries["tool:approval-1"]["title"]


def test_snapshot_stays_within_its_budget() -> None:
    """A transcript larger than the snapshot budget sends its newest entries and says how many are left out."""
    transcript = Transcript()
    for _ in range(40):
        transcript.message("agent", "x" * 100_000)
    entries = transcript.snapshot(budget=1_000_000)
    assert entries[0]["role"] == "system" and "31 earlier entries" in entries[0]["text"]
    assert 10 == len(entries) and transcript.entries["m40"]["text"] == entries[-1]["text"]


def test_huge_diffs_are_clipped_for_screens() -> None:
    """A diff side above MAX_TEXT is cut with a visible note, so no entry outgrows what a viewer takes."""
    transcript = Transcript()
    big = acp.tool_diff_content("big.txt", "x" * (MAX_TEXT + 10))
    transcript.apply(acp.start_tool_call("c1", "Write big", kind="edit", content=[big]))
    text = transcript.entries["tool:c1"]["content"][0]["new_text"]
    assert text.startswith("x" * MAX_TEXT) and text.endswith("(10 more characters not shown)")


def test_snapshot_is_a_copy() -> None:
    """Later appends do not change a snapshot already taken (no duplicated text)."""
    transcript = Transcript()
    transcript.apply(acp.update_agent_message_text("a"))
    snapshot = transcript.snapshot()
    transcript.apply(acp.update_agent_message_text("b"))
    assert "a" == snapshot[0]["text"]


def test_plan_replaces_plan() -> None:
    """Each plan update replaces the whole plan, as ACP specifies."""
    transcript = Transcript()
    transcript.apply(acp.update_plan([acp.plan_entry("one"), acp.plan_entry("two")]))
    transcript.apply(acp.update_plan([acp.plan_entry("three", status="completed")]))
    plans = [e for e in transcript.snapshot() if e["type"] == "plan"]
    assert [[{"content": "three", "status": "completed", "priority": "medium"}]] == [p["entries"] for p in plans]
