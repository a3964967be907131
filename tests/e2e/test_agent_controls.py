"""Agent modes, login and restarts through the whole host path (scripted ACP agent)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import SCRIPTED_AGENT, TETHER, UNIT, Lines, RcRun, start_rc, stop
from tether.protocol.messages import Authenticate, SetMode
from tether.testing import ViewerClient


def current_mode(viewer: ViewerClient) -> str | None:
    """The agent's current mode as the viewer last saw it (None before any controls entry)."""
    controls = viewer.entries.get("controls")
    return controls["modes"]["current"] if controls else None


async def test_modes_are_shown_and_self_approving_ones_refused(rc: RcRun, project: Path) -> None:
    """The viewer sees the agent's modes; a mode that approves by itself is refused under Remote Control."""
    async with ViewerClient(rc.url) as viewer:
        controls = await viewer.wait_for(lambda v: v.entries.get("controls"), 5 * UNIT)
        assert {"ask": False, "acceptEdits": True} == {
            m["id"]: m["self_approving"] for m in controls["modes"]["available"]
        }
        assert controls["remote"] is True
        await viewer.send(SetMode(mode_id="acceptEdits"))
        await viewer.wait_for(lambda v: any("not allowed while Remote Control" in t for t in v.texts("system")))
        await viewer.prompt("mode")
        await viewer.wait_for(lambda v: "mode ask" in v.texts("agent"), 5 * UNIT)
        await viewer.prompt("write guarded.txt still asks")
        await viewer.wait_for(lambda v: v.pending_approval(), 5 * UNIT)
    assert not (project / "guarded.txt").exists()


async def test_an_agent_switching_itself_is_put_back(rc: RcRun) -> None:
    """An agent that moves itself to a self-approving mode is shown as such and switched back."""
    async with ViewerClient(rc.url) as viewer:
        await viewer.prompt("selfmode")
        await viewer.wait_for(lambda v: any("approves tools by itself" in t for t in v.texts("system")), 5 * UNIT)
        await viewer.wait_for(lambda v: current_mode(v) == "ask", 5 * UNIT)
        await viewer.prompt("mode")
        await viewer.wait_for(lambda v: "mode ask" in v.texts("agent"), 5 * UNIT)


async def test_login_from_the_viewer(project: Path, tether_env: dict[str, str], relay: str) -> None:
    """An agent that needs a login shows its methods; authenticate from the phone opens the session."""
    run = start_rc(project, tether_env, relay, agent=f"{SCRIPTED_AGENT} --login")
    try:
        async with ViewerClient(run.url) as viewer:
            login = await viewer.wait_for(lambda v: v.entries.get("login"), 5 * UNIT)
            assert ("needed", [("scripted-login", "agent")]) == (
                login["state"],
                [(m["id"], m["kind"]) for m in login["methods"]],
            )
            await viewer.prompt("say queued until login")
            await viewer.send(Authenticate(method_id="scripted-login"))
            await viewer.wait_for(lambda v: v.entries["login"]["state"] == "done", 5 * UNIT)
            await viewer.wait_for(lambda v: "queued until login" in v.texts("agent"), 5 * UNIT)
    finally:
        stop(run.process)


async def test_a_crashed_agent_is_restarted_and_reattached(rc: RcRun) -> None:
    """An agent with session/load that dies is restarted; the session goes on."""
    async with ViewerClient(rc.url) as viewer:
        await viewer.prompt("crash")
        await viewer.wait_for(lambda v: any("back, with its session" in t for t in v.texts("system")), 10 * UNIT)
        await viewer.prompt("say still here")
        await viewer.wait_for(lambda v: "still here" in v.texts("agent"), 5 * UNIT)
        assert viewer.ended is None


def converse(project: Path, env: dict[str, str], flags: list[str], steps: tuple[tuple[str, str], ...]) -> list[str]:
    """Run interactive `tether` with the scripted agent: type each line, read until its marker, then /quit."""
    process = subprocess.Popen(
        [*TETHER, "--agent", SCRIPTED_AGENT, *flags],
        cwd=project,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert process.stdin is not None and process.stdout is not None
    lines = Lines(process.stdout)
    try:
        for line, marker in steps:
            process.stdin.write(f"{line}\n".encode())
            process.stdin.flush()
            lines.until(marker, 30 * UNIT)  # the first marker waits for tether to start
        process.stdin.write(b"/quit\n")
        process.stdin.close()
        lines.rest(30 * UNIT)
        assert 0 == process.wait(10 * UNIT)
    finally:
        stop(process)
    return lines.seen


def test_terminal_can_switch_modes_when_remote_is_off(project: Path, tether_env: dict[str, str]) -> None:
    """Locally, /mode may pick a self-approving mode; the agent no longer asks, but tether still does."""
    steps = (
        ("/mode acceptEdits", "Mode is now acceptEdits"),
        ("write free.txt no asking", "asked by tether"),
        ("y", "turn ended"),
    )
    seen = converse(project, tether_env, [], steps)
    assert 1 == sum("Approve?" in line for line in seen)
    assert "no asking" == (project / "free.txt").read_text()


def test_skipped_permissions_apply_locally_and_block_remote(project: Path, tether_env: dict[str, str]) -> None:
    """--dangerously-skip-permissions approves by itself in a local session, and /remote then refuses."""
    steps = (("write auto.txt unattended", "turn ended"), ("/remote", "dangerously-skip-permissions"))
    seen = converse(project, tether_env, ["--dangerously-skip-permissions"], steps)
    assert "unattended" == (project / "auto.txt").read_text()
    assert any("approved once (flag)" in line for line in seen)
    assert not any("Remote Control is on" in line for line in seen)


def test_quit_works_while_an_approval_waits(project: Path, tether_env: dict[str, str]) -> None:
    """/quit is a command, not an answer: it ends the session even with an approval pending."""
    seen = converse(project, tether_env, [], (("write never.txt x", "answer: y allow once"),))
    assert "Session ended: the host stopped" in "".join(seen)
    assert "An approval is pending" not in "".join(seen)
    assert not (project / "never.txt").exists()
