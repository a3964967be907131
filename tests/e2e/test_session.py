"""End to end with real processes: relay + `tether rc` + an ACP agent + a scripted viewer."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import TETHER, UNIT, RcRun, start_rc, stop
from tether.config import Config
from tether.testing import ViewerClient, option_id

OPERATOR_TOKEN = "operator-token-for-tests"


@pytest.fixture
def tether_env(tether_env: dict[str, str]) -> dict[str, str]:
    """The shared environment, with an operator token so the relay's /metrics can be read."""
    return {**tether_env, "TETHER_RELAY_OPERATOR_TOKEN": OPERATOR_TOKEN}


async def test_prompt_streams_the_reply(rc: RcRun) -> None:
    """A prompt from the viewer reaches the agent; its streamed text comes back."""
    async with ViewerClient(rc.url) as viewer:
        await viewer.wait_for(lambda v: v.session)
        await viewer.prompt("say hello from the agent")
        await viewer.wait_for(lambda v: "hello from the agent" in v.texts("agent"), 10 * UNIT)
        assert ["say hello from the agent"] == viewer.texts("user")
        await viewer.wait_for(lambda v: v.stop_reasons == ["end_turn"], 5 * UNIT)


async def test_approve_writes_the_file(rc: RcRun, project: Path) -> None:
    """Approving the edit on the device lets it land on disk, and the diff was shown."""
    async with ViewerClient(rc.url) as viewer:
        await viewer.prompt("write notes.txt hello world")
        approval = await viewer.wait_for(lambda v: v.pending_approval(), 10 * UNIT)
        assert not (project / "notes.txt").exists()
        calls = viewer.of_type("tool_call")
        assert [{"type": "diff", "path": "notes.txt", "old_text": None, "new_text": "hello world"}] == [
            {**c, "path": Path(c["path"]).name} for c in calls[0]["content"]
        ]
        await viewer.decide(approval["id"], option_id(approval, "allow_once"))
        await viewer.wait_for(lambda v: any("wrote notes.txt" in t for t in v.texts("agent")), 10 * UNIT)
        decided = viewer.entries[approval["id"]]
        assert ("decided", f"tether-testing ({viewer.device.id})", "allow") == (
            decided["state"], decided["decided_by"], decided["outcome"])  # fmt: skip
    assert "hello world" == (project / "notes.txt").read_text()


async def test_deny_leaves_the_file_untouched(rc: RcRun, project: Path) -> None:
    """Denying the edit keeps the file as it was."""
    (project / "keep.txt").write_text("original")
    async with ViewerClient(rc.url) as viewer:
        await viewer.prompt("write keep.txt replaced")
        approval = await viewer.wait_for(lambda v: v.pending_approval(), 10 * UNIT)
        await viewer.decide(approval["id"], option_id(approval, "reject_once"))
        await viewer.wait_for(lambda v: any("denied keep.txt" in t for t in v.texts("agent")), 10 * UNIT)
    assert "original" == (project / "keep.txt").read_text()


async def test_terminal_answers_first(rc: RcRun, project: Path) -> None:
    """The terminal can answer too; the viewer sees who decided."""
    async with ViewerClient(rc.url) as viewer:
        await viewer.prompt("write term.txt from terminal")
        approval = await viewer.wait_for(lambda v: v.pending_approval(), 10 * UNIT)
        assert rc.process.stdin is not None
        rc.process.stdin.write(b"y\n")
        rc.process.stdin.flush()
        decided = await viewer.wait_for(
            lambda v: v.entries[approval["id"]] if v.entries[approval["id"]]["state"] == "decided" else None,
            10 * UNIT,
        )
        assert "terminal" == decided["decided_by"]
        await viewer.wait_for(lambda v: any("wrote term.txt" in t for t in v.texts("agent")), 10 * UNIT)
    assert "from terminal" == (project / "term.txt").read_text()


async def test_approved_command_runs_and_shows_output(rc: RcRun) -> None:
    """An approved command runs in the project folder; its output appears in the tool call."""
    async with ViewerClient(rc.url) as viewer:
        await viewer.prompt("run echo tether-$((6*7))")
        approval = await viewer.wait_for(lambda v: v.pending_approval(), 10 * UNIT)
        await viewer.decide(approval["id"], option_id(approval, "allow_once"))
        call = await viewer.wait_for(
            lambda v: next((c for c in v.of_type("tool_call") if c["status"] == "completed"), None), 10 * UNIT
        )
        terminal = next(item for item in call["content"] if item["type"] == "terminal")
        assert ("tether-42\n", 0) == (terminal["output"], terminal["exit_code"])


async def test_stop_cancels_the_turn(rc: RcRun) -> None:
    """Stop mid-turn ends the turn as cancelled and the agent stops streaming."""
    async with ViewerClient(rc.url) as viewer:
        await viewer.prompt("slow 100")
        await viewer.wait_for(lambda v: any("tick 2" in t for t in v.texts("agent")), 10 * UNIT)
        await viewer.cancel()
        await viewer.wait_for(lambda v: v.stop_reasons == ["cancelled"], 5 * UNIT)
        assert not any("tick 100" in t for t in viewer.texts("agent"))


async def test_stop_cancels_a_pending_approval(rc: RcRun, project: Path) -> None:
    """Stop while an approval is pending resolves it as cancelled; nothing is written."""
    async with ViewerClient(rc.url) as viewer:
        await viewer.prompt("write never.txt nope")
        approval = await viewer.wait_for(lambda v: v.pending_approval(), 10 * UNIT)
        await viewer.cancel()
        await viewer.wait_for(lambda v: v.entries[approval["id"]]["state"] == "cancelled", 5 * UNIT)
        await viewer.wait_for(lambda v: v.stop_reasons, 5 * UNIT)
    assert not (project / "never.txt").exists()


async def test_late_viewer_gets_the_whole_history(rc: RcRun) -> None:
    """A viewer that joins mid-session sees everything said so far, once."""
    async with ViewerClient(rc.url) as first:
        await first.prompt("say first words")
        await first.wait_for(lambda v: v.stop_reasons, 10 * UNIT)
    async with ViewerClient(rc.url, **first.rejoin()) as second:  # the link worked once; the device comes back
        await second.wait_for(lambda v: v.texts("agent"), 5 * UNIT)
        assert (["say first words"], ["first words"]) == (second.texts("user"), second.texts("agent"))


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
async def test_closing_the_terminal_ends_the_session_everywhere(rc: RcRun, relay: str, sig: signal.Signals) -> None:
    """Closing the terminal (SIGHUP), SIGTERM or Ctrl-C ends the session: viewer sees ended, relay forgets it."""
    async with ViewerClient(rc.url) as viewer:
        await viewer.wait_for(lambda v: v.session)
        rc.process.send_signal(sig)
        # "At once" is measured in benchmarks/session_bench.py; here: it happens, by the event.
        await viewer.wait_for(lambda v: v.closed, 5 * UNIT)
        assert viewer.ended is not None and 4000 == viewer.close_code
    assert 0 == rc.process.wait(5 * UNIT)
    async with httpx.AsyncClient() as client:
        metrics = await client.get(f"{relay}/metrics", headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
        assert 0 == metrics.json()["sessions"]


def test_untrusted_folder_is_refused(tmp_path: Path, tether_env: dict[str, str], relay: str) -> None:
    """`tether rc` refuses to start in an untrusted folder and names the command to run."""
    folder = tmp_path / "untrusted"
    folder.mkdir()
    result = subprocess.run(
        [*TETHER, "rc", "--relay", relay, "--json"], cwd=folder, env=tether_env, capture_output=True, timeout=30
    )
    assert 2 == result.returncode
    assert b"tether trust" in result.stderr and b"Traceback" not in result.stderr
    assert b"" == result.stdout


def test_skipped_permissions_are_refused(project: Path, tether_env: dict[str, str], relay: str) -> None:
    """Remote Control refuses --dangerously-skip-permissions with a clear error."""
    result = subprocess.run(
        [*TETHER, "rc", "--relay", relay, "--dangerously-skip-permissions"],
        cwd=project,
        env=tether_env,
        capture_output=True,
        timeout=30,
    )
    assert 2 == result.returncode
    assert b"dangerously-skip-permissions" in result.stderr and b"Traceback" not in result.stderr


async def test_agent_cannot_write_outside_the_project(rc: RcRun, tmp_path: Path) -> None:
    """fs/write_text_file outside the project folder is an ACP error for the agent."""
    target = tmp_path / "escaped.txt"
    async with ViewerClient(rc.url) as viewer:
        await viewer.prompt(f"escape {target}")
        reply = await viewer.wait_for(lambda v: [t for t in v.texts("agent") if "refused" in t], 10 * UNIT)
        assert "outside the project" in reply[0]
    assert not target.exists()


def test_unreachable_relay_is_a_clear_error(project: Path, tether_env: dict[str, str]) -> None:
    """A relay this machine logged in to, now not there, gives one readable line, not a traceback."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from tests.conftest import free_port
    from tether.host.device import Devices

    relay = f"http://127.0.0.1:{free_port()}"
    devices = Devices(Path(tether_env["TETHER_STATE_DIR"]), use_keyring=False)
    devices.remember(relay, "dev-gone", "tester", Ed25519PrivateKey.generate())
    result = subprocess.run(
        [*TETHER, "rc", "--relay", relay, "--agent", "demo", "--json"],
        cwd=project,
        env=tether_env,
        capture_output=True,
        timeout=60,
    )
    assert 2 == result.returncode
    assert b"cannot reach the relay" in result.stderr and b"Traceback" not in result.stderr


def test_embedded_relay_serves_a_session(project: Path, tether_env: dict[str, str]) -> None:
    """Without --relay, `tether rc` runs a relay inside the process on 127.0.0.1."""
    run = start_rc(project, tether_env, relay="")
    try:
        assert run.url.startswith("http://127.0.0.1:")
        assert 200 == httpx.get(run.url, timeout=5 * UNIT).status_code
    finally:
        run.process.send_signal(signal.SIGTERM)
        code = run.process.wait(10 * UNIT)
        stop(run.process)
    assert 0 == code


async def test_unanswered_approval_times_out_to_deny(project: Path, tether_env: dict[str, str], relay: str) -> None:
    """An approval nobody answers is denied after approvals.timeout_seconds; nothing is written."""
    Config(Path(tether_env["TETHER_CONFIG_DIR"]) / "config.toml").set("approvals.timeout_seconds", "1")
    run = start_rc(project, tether_env, relay)
    try:
        async with ViewerClient(run.url) as viewer:
            await viewer.prompt("write late.txt too late")
            approval = await viewer.wait_for(lambda v: v.pending_approval(), 10 * UNIT)
            expired = await viewer.wait_for(
                lambda v: v.entries[approval["id"]] if v.entries[approval["id"]]["state"] == "expired" else None,
                10 * UNIT,
            )
            assert "reject" == expired["outcome"]
            await viewer.wait_for(lambda v: any("denied late.txt" in t for t in v.texts("agent")), 10 * UNIT)
    finally:
        stop(run.process)
    assert not (project / "late.txt").exists()


async def test_edits_outside_the_project_are_flagged_and_refused(rc: RcRun, tmp_path: Path) -> None:
    """An edit aimed outside the project says so on the approval card; fs/* still refuses it."""
    async with ViewerClient(rc.url) as viewer:
        await viewer.prompt("write ../outside.txt sneaky")
        approval = await viewer.wait_for(lambda v: v.pending_approval(), 10 * UNIT)
        assert "OUTSIDE the project" in approval["title"]
        await viewer.decide(approval["id"], option_id(approval, "allow_once"))
        await viewer.wait_for(lambda v: any("failed ../outside.txt" in t for t in v.texts("agent")), 10 * UNIT)
    assert not (tmp_path / "outside.txt").exists()
