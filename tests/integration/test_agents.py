"""tether's demo agent (``python -m tether.agents.demo``) as a real ACP subprocess.

It is driven by the naive test client of ``tests/fakes/acp_client.py`` (files written as
asked, commands run as asked, permission requests answered from a list of option kinds),
so what these tests pin is the demo's side of ACP: what it streams, what it asks, and that
it touches nothing it was not allowed to. The scripted test agent is exercised through
the real host in ``tests/e2e``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from acp import PROTOCOL_VERSION, text_block
from acp.core import ClientSideConnection
from acp.schema import InitializeResponse, StopReason

from tests.conftest import UNIT
from tests.fakes.acp_client import NaiveClient, spawn_agent

DEMO = (sys.executable, "-m", "tether.agents.demo")
DEMO_FILE = "TETHER_DEMO.md"
# The tour sleeps about 2 s per turn; a busy machine stretches it, so the bound is generous.
TURN_TIMEOUT = 30 * UNIT


class ProjectClient(NaiveClient):
    """The naive client, also noting which files the project held at each permission request."""

    def __init__(self, root: Path, answers: Iterable[str] = ()) -> None:
        super().__init__(root, answers)
        self.files_when_asked: list[list[str]] = []

    async def request_permission(self, session_id: str, tool_call: Any, options: Any, **kwargs: Any) -> Any:
        self.files_when_asked.append(sorted(p.name for p in self.root.iterdir()))
        return await super().request_permission(session_id, tool_call, options, **kwargs)

    def chunks(self) -> list[str]:
        """The agent's message chunks, in order."""
        return [u.content.text for u in self.of_kind("agent_message_chunk")]

    def calls(self, kind: str) -> list[dict[str, Any]]:
        """The tool calls of one kind, each as it stands after all its updates."""
        return [c for c in self.tool_calls().values() if c.get("kind") == kind]

    async def wait_until(self, predicate: Callable[[], object]) -> None:
        """Wait until ``predicate()`` holds, for at most 10 units."""
        async with asyncio.timeout(10 * UNIT):
            await self.wait_for(lambda: bool(predicate()))


@dataclass(frozen=True)
class Demo:
    """A connected demo agent with one session open."""

    conn: ClientSideConnection
    session_id: str
    info: InitializeResponse

    async def prompt(self, text: str) -> StopReason:
        """Send one prompt and return its stop reason."""
        response = await asyncio.wait_for(
            self.conn.prompt(session_id=self.session_id, prompt=[text_block(text)]), TURN_TIMEOUT
        )
        return response.stop_reason

    async def cancel(self) -> None:
        """ACP ``session/cancel``."""
        await self.conn.cancel(session_id=self.session_id)


@asynccontextmanager
async def demo(client: NaiveClient, logs: Path) -> AsyncIterator[Demo]:
    """Start the demo agent, initialize it and open a session in the client's project."""
    with logs.open("wb") as stderr:
        async with spawn_agent(DEMO, os.environ, client, stderr) as (conn, _):
            async with asyncio.timeout(10 * UNIT):
                info = await conn.initialize(
                    protocol_version=PROTOCOL_VERSION, client_capabilities=client.capabilities()
                )
                session = await conn.new_session(cwd=str(client.root), mcp_servers=[])
            yield Demo(conn, session.session_id, info)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty project folder, the session's cwd."""
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


async def test_demo_labels_itself_and_streams(workdir: Path, tmp_path: Path) -> None:
    """The demo names itself, says it is a demo first, streams in chunks and ends with next steps."""
    client = ProjectClient(workdir)
    async with demo(client, tmp_path / "demo.log") as agent:
        assert ("tether-demo", 1) == (agent.info.agent_info and agent.info.agent_info.name, agent.info.protocol_version)
        assert "end_turn" == await agent.prompt("hello")
    assert client.text().startswith("This is tether's DEMO agent: no model is behind it")
    assert len(client.chunks()) > 10
    assert "tether --agent claude" in client.text() and 'tether --agent "' in client.text()


async def test_demo_plan_progresses(workdir: Path, tmp_path: Path) -> None:
    """The plan has 3 entries whose statuses move from pending to completed."""
    client = ProjectClient(workdir)
    async with demo(client, tmp_path / "demo.log") as agent:
        await agent.prompt("hello")
    plans = [[entry.status for entry in update.entries] for update in client.of_kind("plan")]
    assert ["in_progress", "pending", "pending"] == plans[0]
    assert ["completed", "completed", "completed"] == plans[-1]
    assert all(3 == len(p) for p in plans) and len(plans) >= 3


async def test_demo_writes_only_after_approval(workdir: Path, tmp_path: Path) -> None:
    """The edit is proposed as a diff, asked with all four option kinds, and written once allowed."""
    client = ProjectClient(workdir, ["allow_once", "allow_once"])
    async with demo(client, tmp_path / "demo.log") as agent:
        assert "end_turn" == await agent.prompt("show me around")
    target = workdir / DEMO_FILE
    [edit] = client.calls("edit")
    [diff] = edit["content"]
    assert ("diff", str(target), None) == (diff["type"], diff["path"], diff.get("old_text"))
    assert target.read_text() == diff["new_text"]
    assert [[], [DEMO_FILE]] == client.files_when_asked  # nothing on disk until the edit was allowed
    tool_call, options = client.permission_requests[0]
    assert (edit["tool_call_id"], "edit") == (tool_call.tool_call_id, tool_call.kind)
    assert {"allow_once", "allow_always", "reject_once", "reject_always"} == {o.kind for o in options}
    assert "completed" == edit["status"]


async def test_demo_runs_the_command_in_a_client_terminal(workdir: Path, tmp_path: Path) -> None:
    """The approved command runs through terminal/create and is embedded in the execute tool call."""
    (workdir / "visible.txt").write_text("x")
    client = ProjectClient(workdir, ["allow_once", "allow_once"])
    async with demo(client, tmp_path / "demo.log") as agent:
        await agent.prompt("hello")
    [terminal_id] = client.terminals
    assert [["ls", "-la"]] == client.commands
    assert b"visible.txt" in client.terminals[terminal_id].output
    [run] = client.calls("execute")
    assert [{"type": "terminal", "terminal_id": terminal_id}] == run["content"]
    assert "completed" == run["status"]
    assert "exited with code 0" in client.text()


async def test_demo_leaves_the_file_untouched_on_rejection(workdir: Path, tmp_path: Path) -> None:
    """Rejecting keeps the file as it was, marks the tool calls failed, says so, and runs nothing."""
    target = workdir / DEMO_FILE
    target.write_text("original\n")
    client = ProjectClient(workdir, ["reject_once", "reject_once"])
    async with demo(client, tmp_path / "demo.log") as agent:
        assert "end_turn" == await agent.prompt("hello")
    assert "original\n" == target.read_text()
    [edit] = client.calls("edit")
    [diff] = edit["content"]
    assert ("original\n", "failed") == (diff["old_text"], edit["status"])
    assert ["failed"] == [run["status"] for run in client.calls("execute")]
    assert "You rejected it" in client.text()
    assert ({}, []) == (client.terminals, client.commands)


async def test_demo_remembers_always_per_kind(workdir: Path, tmp_path: Path) -> None:
    """After "always allow", the next turn edits and runs without asking again."""
    client = ProjectClient(workdir, ["allow_always", "allow_always"])
    async with demo(client, tmp_path / "demo.log") as agent:
        await agent.prompt("first")
        await agent.prompt("second")
    assert ["edit", "execute"] == [tool_call.kind for tool_call, _ in client.permission_requests]
    assert 2 == (workdir / DEMO_FILE).read_text().count("- turn ")
    assert 2 == len(client.commands)
    assert 2 == client.text().count("so I go ahead without asking")


async def test_demo_cancel_mid_turn(workdir: Path, tmp_path: Path) -> None:
    """session/cancel sent while the demo streams ends the turn with `cancelled`; nothing is written or run."""
    # Held: a cancel that a busy machine delays past the intro still lets nothing through.
    client = ProjectClient(workdir, ["hold"])
    async with demo(client, tmp_path / "demo.log") as agent:
        turn = asyncio.create_task(agent.prompt("hello"))
        await client.wait_until(client.chunks)
        await agent.cancel()
        assert "cancelled" == await turn
        client.release_permissions()
    assert ([], False) == (client.commands, (workdir / DEMO_FILE).exists())
    assert not any(call["status"] == "completed" for call in client.tool_calls().values())


async def test_demo_cancel_while_asking(workdir: Path, tmp_path: Path) -> None:
    """Cancelling during a permission request ends the turn `cancelled`; the edit is failed, nothing is written."""
    client = ProjectClient(workdir, ["hold"])
    async with demo(client, tmp_path / "demo.log") as agent:
        turn = asyncio.create_task(agent.prompt("hello"))
        await client.wait_until(lambda: client.permission_requests)
        client.release_permissions()
        await agent.cancel()
        assert "cancelled" == await turn
    [edit] = client.calls("edit")
    assert ("failed", []) == (edit["status"], client.commands)
    assert not (workdir / DEMO_FILE).exists()
