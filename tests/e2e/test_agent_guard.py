"""Rules that hold for any agent, end to end: real `tether rc`, the scripted ACP agent, a scripted viewer."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import SCRIPTED_AGENT, UNIT, RcRun, start_rc, stop
from tether.protocol.messages import Authenticate
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
    assert rc.process.stderr is not None
    stderr = rc.process.stderr.read().decode()
    assert "Starting python" in stderr, "the terminal says what starts"
    assert "acted without asking" in stderr


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


async def test_a_prompt_answered_auth_required_shows_the_login(project: Path, tether_env: dict[str, str],
                                                              relay: str) -> None:  # fmt: skip
    """An agent that wants a login only at its first prompt: its methods show on the phone, and the login works."""
    run = start_rc(project, tether_env, relay, agent=f"{SCRIPTED_AGENT} --login-later")
    try:
        async with ViewerClient(run.url) as viewer:
            await viewer.prompt("say hello")
            login = await viewer.wait_for(lambda v: v.entries.get("login"), 10 * UNIT)
            assert ("needed", ["scripted-login"]) == (login["state"], [m["id"] for m in login["methods"]])
            await viewer.send(Authenticate(method_id="scripted-login"))
            await viewer.wait_for(lambda v: v.entries["login"]["state"] == "done", 10 * UNIT)
            await viewer.prompt("say logged in")
            await viewer.wait_for(lambda v: any("logged in" in t for t in v.texts("agent")), 10 * UNIT)
    finally:
        stop(run.process)
