"""Rules that hold for any agent, end to end: real `tether rc`, the scripted ACP agent, a scripted viewer."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import UNIT, RcRun
from tether.testing import ViewerClient


async def test_an_agent_that_edits_without_asking_ends_remote_control(rc: RcRun, project: Path) -> None:
    """A native edit that completes with no permission request: every screen is told, Remote Control ends (exit 1)."""
    async with ViewerClient(rc.url) as viewer:
        await viewer.prompt("nativewrite sneaky.txt gotcha")
        await viewer.wait_for(lambda v: v.closed, 10 * UNIT)
        [card] = viewer.of_type("tool_call")
        assert card["title"].startswith("ACTED WITHOUT ASKING")
        assert any("acted without asking" in t for t in viewer.texts("system"))
        assert viewer.ended is not None and "acted without asking" in viewer.ended
    assert 1 == rc.process.wait(10 * UNIT)


async def test_no_card_stays_open_after_its_turn_and_missing_files_read_empty(rc: RcRun) -> None:
    """Tool calls the agent never finished are closed when the turn ends; a missing file reads as empty (as Zed)."""
    async with ViewerClient(rc.url) as viewer:
        await viewer.prompt("leaveopen")
        await viewer.wait_for(lambda v: v.stop_reasons, 10 * UNIT)
        cards = viewer.of_type("tool_call")
        assert ["failed", "failed"] == [c["status"] for c in cards]
        assert "closed as not run" in cards[0]["content"][-1]["text"]
        await viewer.prompt("readmissing nothing/here.txt")
        await viewer.wait_for(lambda v: any("read 0 characters" in t or "failed" in t for t in v.texts("agent")),
                              10 * UNIT)  # fmt: skip
        assert any("read 0 characters" in t for t in viewer.texts("agent"))
