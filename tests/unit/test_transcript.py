"""The transcript folds ACP updates into entries and mirrors each change as a message."""

from __future__ import annotations

import acp
from acp import schema

from tether.host.transcript import Transcript
from tether.protocol.messages import Append, Entry


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
    entry = transcript.entries["c1"]
    assert ("Edit a.txt", "completed") == (entry["title"], entry["status"])
    assert [{"type": "diff", "path": "a.txt", "old_text": "old", "new_text": "new"}] == entry["content"]


def test_terminal_output_survives_release() -> None:
    """A tool call keeps showing command output after the terminal is gone."""
    views = {"t1": {"command": "ls", "output": "a\n", "exit_code": 0, "truncated": False}}
    transcript = Transcript(terminal_view=views.get)
    transcript.apply(
        schema.ToolCallStart(
            session_update="tool_call",
            tool_call_id="c1",
            title="ls",
            kind="execute",
            content=[acp.tool_terminal_ref("t1")],
        )
    )
    views.clear()
    transcript.apply(acp.update_tool_call("c1", status="completed"))
    assert "a\n" == transcript.entries["c1"]["content"][0]["output"]


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
