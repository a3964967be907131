"""The host enforces its rules itself, end to end: real `tether rc`, a real ACP agent, a scripted viewer.

Each test reproduces a hole found from outside (issue 7) through the scripted agent's
hostile commands (tests/agents/scripted_agent.py) or a hostile viewer frame.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import SCRIPTED_AGENT, UNIT, RcRun, start_rc, stop
from tether.testing import ViewerClient, option_id


def real(path: Path) -> str:
    """The path as the host names it (symlinks resolved, as in the project root it holds)."""
    return str(path.resolve())


def replied(viewer: ViewerClient, text: str) -> list[str]:
    return [t for t in viewer.texts("agent") if text in t]


async def test_a_write_nobody_approved_is_asked_by_the_host(rc: RcRun, project: Path) -> None:
    """fs/write_text_file with no approval covering it: tether asks itself, naming the path; deny keeps the file."""
    (project / "notes.md").write_text("mine")
    expected = f"Write {real(project)}/notes.md"
    async with ViewerClient(rc.url) as viewer:
        await viewer.prompt("sneakwrite notes.md overwritten")
        approval = await viewer.wait_for(lambda v: v.pending_approval(), 10 * UNIT)
        assert ("host", expected) == (approval["source"], approval["title"])
        await viewer.decide(approval["id"], option_id(approval, "reject_once"))
        await viewer.wait_for(lambda v: replied(v, "failed"), 10 * UNIT)
    assert "mine" == (project / "notes.md").read_text()


async def test_a_host_approval_allows_exactly_that_write(rc: RcRun, project: Path) -> None:
    """Allowing the host's own approval lets that one write land."""
    async with ViewerClient(rc.url) as viewer:
        await viewer.prompt("sneakwrite new.md hello")
        approval = await viewer.wait_for(lambda v: v.pending_approval(), 10 * UNIT)
        await viewer.decide(approval["id"], option_id(approval, "allow_once"))
        await viewer.wait_for(lambda v: replied(v, "wrote new.md"), 10 * UNIT)
    assert "hello" == (project / "new.md").read_text()


async def test_a_command_nobody_approved_is_asked_with_its_full_argv(rc: RcRun, project: Path) -> None:
    """terminal/create with no approval: tether asks, showing argv and folder; deny means it never runs."""
    expected = f"Run sh -c 'touch pwned' in {real(project)}"
    async with ViewerClient(rc.url) as viewer:
        await viewer.prompt("sneakrun touch pwned")
        approval = await viewer.wait_for(lambda v: v.pending_approval(), 10 * UNIT)
        assert expected == approval["title"]
        await viewer.decide(approval["id"], option_id(approval, "reject_once"))
        await viewer.wait_for(lambda v: replied(v, "failed"), 10 * UNIT)
    assert not (project / "pwned").exists()


async def test_added_variables_are_shown_and_risky_ones_flagged(rc: RcRun, project: Path) -> None:
    """A command the agent got approved but runs with LD_PRELOAD added is asked again, the variable flagged."""
    async with ViewerClient(rc.url) as viewer:
        await viewer.prompt("envrun LD_PRELOAD=/tmp/evil.so touch ran")
        first = await viewer.wait_for(lambda v: v.pending_approval(), 10 * UNIT)
        await viewer.decide(first["id"], option_id(first, "allow_once"))
        second = await viewer.wait_for(
            lambda v: next((a for a in v.of_type("approval") if a["state"] == "pending" and a["id"] != first["id"]),
                           None), 10 * UNIT)  # fmt: skip
        assert "LD_PRELOAD=/tmp/evil.so (changes what runs)" in second["title"]
        await viewer.decide(second["id"], option_id(second, "reject_once"))
        await viewer.wait_for(lambda v: replied(v, "failed"), 10 * UNIT)
    assert not (project / "ran").exists()


async def test_the_agent_cannot_rewrite_an_approval_card(rc: RcRun) -> None:
    """A tool_call_update carrying an approval's id does not change what the approval shows."""
    async with ViewerClient(rc.url) as viewer:
        await viewer.prompt("write ../cron-evil x")
        approval = await viewer.wait_for(lambda v: v.pending_approval(), 10 * UNIT)
        await viewer.decide(approval["id"], option_id(approval, "reject_once"))
        await viewer.wait_for(lambda v: v.stop_reasons, 10 * UNIT)
        await viewer.prompt(f"forge {approval['id']} Write notes.txt")
        await viewer.wait_for(lambda v: replied(v, "forged"), 10 * UNIT)
        assert approval["title"] == viewer.entries[approval["id"]]["title"]
        assert "OUTSIDE the project" in viewer.entries[approval["id"]]["title"]


async def test_a_mode_switch_sent_as_a_config_option_is_moved_back(rc: RcRun) -> None:
    """The agent switching itself to acceptEdits through a mode-category option is put back to asking."""
    async with ViewerClient(rc.url) as viewer:
        await viewer.prompt("optmode")
        await viewer.wait_for(lambda v: any("Switching the agent to 'ask'" in t for t in v.texts("system")), 10 * UNIT)
        await viewer.wait_for(lambda v: v.stop_reasons, 10 * UNIT)
        await viewer.prompt("mode")
        await viewer.wait_for(lambda v: replied(v, "mode ask"), 10 * UNIT)


async def test_a_failed_switch_back_ends_remote_control(project: Path, tether_env: dict[str, str], relay: str) -> None:
    """If the agent refuses to leave a self-approving mode, the phone is told and `tether rc` exits 1."""
    run = start_rc(project, tether_env, relay, agent=f"{SCRIPTED_AGENT} --refuse-options")
    try:
        async with ViewerClient(run.url) as viewer:
            await viewer.prompt("optmode")
            await viewer.wait_for(lambda v: v.closed, 10 * UNIT)
            assert viewer.ended is not None and "could not be moved to a mode that asks" in viewer.ended
        assert 1 == run.process.wait(10 * UNIT)
    finally:
        stop(run.process)


async def test_a_command_killed_by_a_realtime_signal_ends_the_turn(rc: RcRun) -> None:
    """Signal 40 (no name in Python's enum) still ends the command and the turn."""
    async with ViewerClient(rc.url) as viewer:
        await viewer.prompt("run kill -40 $$")
        approval = await viewer.wait_for(lambda v: v.pending_approval(), 10 * UNIT)
        await viewer.decide(approval["id"], option_id(approval, "allow_once"))
        await viewer.wait_for(lambda v: v.stop_reasons == ["end_turn"], 10 * UNIT)


async def test_deeply_nested_viewer_frame_does_not_stop_the_host(rc: RcRun) -> None:
    """200,000 nested brackets from the viewer are dropped; the session keeps serving."""
    async with ViewerClient(rc.url) as viewer:
        await viewer.wait_for(lambda v: v.session)
        await viewer.send_payload(b"[" * 200_000)
        await viewer.prompt("say still here")
        await viewer.wait_for(lambda v: replied(v, "still here"), 10 * UNIT)


async def test_a_lone_surrogate_does_not_silence_the_phone(rc: RcRun) -> None:
    """A prompt with a lone UTF-16 surrogate is shown (replaced) and later messages still arrive."""
    async with ViewerClient(rc.url) as viewer:
        await viewer.wait_for(lambda v: v.session)
        await viewer.send_payload(b'{"kind":"prompt","text":"say broken \\ud800 emoji"}')
        await viewer.wait_for(lambda v: replied(v, "emoji"), 10 * UNIT)
        await viewer.prompt("say after")
        await viewer.wait_for(lambda v: replied(v, "after"), 10 * UNIT)
