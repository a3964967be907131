"""The demo and scripted agents as real ACP subprocesses, driven by a naive client.

The client below is not tether's host: it answers permission requests by option kind
(or holds them until cancelled), serves ``fs/*`` inside a tmp project folder and runs
``terminal/*`` with plain subprocesses. What these tests pin is the agents' side of ACP.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from acp import PROTOCOL_VERSION, Client, RequestError, connect_to_agent, text_block
from acp.client.connection import ClientSideConnection
from acp.schema import (
    AgentMessageChunk,
    AgentPlanUpdate,
    AllowedOutcome,
    ClientCapabilities,
    CreateTerminalResponse,
    DeniedOutcome,
    EnvVariable,
    FileSystemCapabilities,
    InitializeResponse,
    PermissionOption,
    PermissionOptionKind,
    ReadTextFileResponse,
    RequestPermissionResponse,
    StopReason,
    TerminalExitStatus,
    TerminalOutputResponse,
    TextContentBlock,
    ToolCallProgress,
    ToolCallStart,
    ToolCallUpdate,
    WaitForTerminalExitResponse,
    WriteTextFileResponse,
)

from tests.conftest import ROOT, UNIT

DEMO = (sys.executable, "-m", "tether.agents.demo")
SCRIPTED = (sys.executable, str(ROOT / "tests" / "agents" / "scripted_agent.py"))
CAPABILITIES = ClientCapabilities(fs=FileSystemCapabilities(read_text_file=True, write_text_file=True), terminal=True)
STDOUT_LIMIT = 50 * 1024 * 1024  # as the SDK's own default: one ACP line can carry a whole file


@dataclass
class NaiveTerminal:
    """A command started for ``terminal/create``, its output kept under the byte limit."""

    command: str
    args: list[str]
    limit: int | None
    process: asyncio.subprocess.Process
    output: bytearray = field(default_factory=bytearray)
    truncated: bool = False
    reader: asyncio.Task[None] | None = None

    async def pump(self) -> None:
        """Read the command's output; past the limit, keep the newest bytes (ACP)."""
        assert self.process.stdout is not None
        while data := await self.process.stdout.read(4096):
            self.output += data
            if self.limit is not None and len(self.output) > self.limit:
                del self.output[: len(self.output) - self.limit]
                self.truncated = True

    async def finished(self) -> int:
        """Wait until the command exits and its output is read."""
        assert self.reader is not None
        await self.reader
        return await self.process.wait()


class ProjectClient:
    """A minimal ACP client for one tmp project (see the module doc).

    ``answer`` is the option kind chosen for every permission request; None holds the
    request until ``cancel_pending()``, as a host does when the user presses stop.
    """

    def __init__(self, root: Path, answer: PermissionOptionKind | None = "allow_once") -> None:
        self.root = root.resolve()
        self.answer = answer
        self.updates: list[Any] = []
        self.permissions: list[tuple[ToolCallUpdate, list[PermissionOption]]] = []
        self.files_when_asked: list[list[str]] = []
        self.terminals: dict[str, NaiveTerminal] = {}
        self._held: list[asyncio.Future[RequestPermissionResponse]] = []
        self._changed = asyncio.Condition()

    # -- what the tests read -------------------------------------------------------------

    def chunks(self) -> list[str]:
        """Agent message chunks, in order."""
        return [
            u.content.text
            for u in self.updates
            if isinstance(u, AgentMessageChunk) and isinstance(u.content, TextContentBlock)
        ]

    def text(self) -> str:
        """All agent text so far."""
        return "".join(self.chunks())

    def plans(self) -> list[list[str]]:
        """The statuses of every plan update."""
        return [[e.status for e in u.entries] for u in self.updates if isinstance(u, AgentPlanUpdate)]

    def calls(self, kind: str) -> list[ToolCallStart]:
        """Tool calls announced with ``kind``."""
        return [u for u in self.updates if isinstance(u, ToolCallStart) and u.kind == kind]

    def statuses(self, tool_call_id: str) -> list[str | None]:
        """Every status a tool call went through."""
        return [
            u.status
            for u in self.updates
            if isinstance(u, ToolCallStart | ToolCallProgress) and u.tool_call_id == tool_call_id and u.status
        ]

    async def wait_for(self, predicate: Callable[[], object], timeout: float = 5 * UNIT) -> None:  # noqa: ASYNC109
        """Wait until ``predicate()`` holds."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def cancel_pending(self) -> None:
        """Answer every held permission request with ``cancelled`` (ACP, on session/cancel)."""
        for future in self._held:
            if not future.done():
                future.set_result(RequestPermissionResponse(outcome=DeniedOutcome(outcome="cancelled")))

    # -- ACP client methods --------------------------------------------------------------

    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        self.updates.append(update)
        await self._notify()

    async def request_permission(
        self, session_id: str, tool_call: ToolCallUpdate, options: list[PermissionOption], **kwargs: Any
    ) -> RequestPermissionResponse:
        self.permissions.append((tool_call, options))
        self.files_when_asked.append(sorted(p.name for p in self.root.iterdir()))
        await self._notify()
        if self.answer is None:
            held: asyncio.Future[RequestPermissionResponse] = asyncio.get_running_loop().create_future()
            self._held.append(held)
            return await held
        # Choose by kind, answer with the agent's own id: ids are the agent's to pick.
        chosen = next(o for o in options if o.kind == self.answer)
        return RequestPermissionResponse(outcome=AllowedOutcome(option_id=chosen.option_id, outcome="selected"))

    def _inside(self, path: str) -> Path:
        resolved = Path(path).resolve()
        if not resolved.is_relative_to(self.root):
            raise RequestError.invalid_params({"message": f"{path} is outside the project folder"})
        return resolved

    async def read_text_file(
        self, session_id: str, path: str, line: int | None = None, limit: int | None = None, **kwargs: Any
    ) -> ReadTextFileResponse:
        target = self._inside(path)
        if not target.exists():
            raise RequestError.resource_not_found(path)
        return ReadTextFileResponse(content=target.read_text())

    async def write_text_file(self, session_id: str, path: str, content: str, **kwargs: Any) -> WriteTextFileResponse:
        self._inside(path).write_text(content)
        return WriteTextFileResponse()

    async def create_terminal(
        self,
        session_id: str,
        command: str,
        args: list[str] | None = None,
        env: list[EnvVariable] | None = None,
        cwd: str | None = None,
        output_byte_limit: int | None = None,
        **kwargs: Any,
    ) -> CreateTerminalResponse:
        process = await asyncio.create_subprocess_exec(
            command,
            *(args or []),
            cwd=self._inside(cwd or str(self.root)),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        terminal = NaiveTerminal(command, list(args or []), output_byte_limit, process)
        terminal.reader = asyncio.create_task(terminal.pump())
        terminal_id = f"term-{len(self.terminals) + 1}"
        self.terminals[terminal_id] = terminal
        return CreateTerminalResponse(terminal_id=terminal_id)

    async def terminal_output(self, session_id: str, terminal_id: str, **kwargs: Any) -> TerminalOutputResponse:
        terminal = self.terminals[terminal_id]
        code = terminal.process.returncode
        status = None if code is None else TerminalExitStatus(exit_code=max(code, 0))
        return TerminalOutputResponse(output=terminal.output.decode(), truncated=terminal.truncated, exit_status=status)

    async def wait_for_terminal_exit(
        self, session_id: str, terminal_id: str, **kwargs: Any
    ) -> WaitForTerminalExitResponse:
        code = await self.terminals[terminal_id].finished()
        return WaitForTerminalExitResponse(exit_code=code) if code >= 0 else WaitForTerminalExitResponse(signal="kill")

    async def kill_terminal(self, session_id: str, terminal_id: str, **kwargs: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.terminals[terminal_id].process.kill()

    async def release_terminal(self, session_id: str, terminal_id: str, **kwargs: Any) -> None:
        await self.kill_terminal(session_id, terminal_id)
        await self.terminals[terminal_id].finished()

    async def close(self) -> None:
        """Stop whatever still runs, so no subprocess outlives the test."""
        for terminal_id in self.terminals:
            await self.release_terminal("", terminal_id)


@dataclass(frozen=True)
class Running:
    """A connected agent subprocess with one session open."""

    conn: ClientSideConnection
    session_id: str
    info: InitializeResponse

    async def prompt(self, text: str, timeout: float = 8 * UNIT) -> StopReason:  # noqa: ASYNC109
        """Send one prompt and return the stop reason."""
        response = await asyncio.wait_for(
            self.conn.prompt(session_id=self.session_id, prompt=[text_block(text)]), timeout
        )
        return response.stop_reason

    async def cancel(self) -> None:
        """ACP ``session/cancel``."""
        await self.conn.cancel(session_id=self.session_id)


@asynccontextmanager
async def agent(argv: tuple[str, ...], client: ProjectClient, logs: Path) -> AsyncIterator[Running]:
    """Start ``argv`` as an ACP agent, initialize it and open a session in the project."""
    with logs.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=client.root,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            limit=STDOUT_LIMIT,
        )
    assert process.stdin is not None and process.stdout is not None
    # ProjectClient implements only what these agents call; the SDK answers the rest.
    conn = connect_to_agent(cast(Client, client), process.stdin, process.stdout)
    try:
        async with asyncio.timeout(5 * UNIT):
            info = await conn.initialize(protocol_version=PROTOCOL_VERSION, client_capabilities=CAPABILITIES)
            session = await conn.new_session(cwd=str(client.root), mcp_servers=[])
        yield Running(conn, session.session_id, info)
    finally:
        await conn.close()
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 5 * UNIT)
        except TimeoutError:
            process.kill()
            await process.wait()
        await client.close()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty project folder, the session cwd (untrusted: this client does not check trust)."""
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


# -- the demo agent ------------------------------------------------------------------------


async def test_demo_labels_itself_and_streams(workdir: Path, tmp_path: Path) -> None:
    """The demo names itself, says it is a demo first, streams in chunks and ends with next steps."""
    client = ProjectClient(workdir)
    async with agent(DEMO, client, tmp_path / "demo.log") as demo:
        assert ("tether-demo", 1) == (demo.info.agent_info and demo.info.agent_info.name, demo.info.protocol_version)
        assert "end_turn" == await demo.prompt("hello")
    assert client.text().startswith("This is tether's DEMO agent: no model is behind it")
    assert len(client.chunks()) > 10
    assert "tether --agent claude" in client.text() and 'tether --agent "' in client.text()


async def test_demo_plan_progresses(workdir: Path, tmp_path: Path) -> None:
    """The plan has 3 entries whose statuses move from pending to completed."""
    client = ProjectClient(workdir)
    async with agent(DEMO, client, tmp_path / "demo.log") as demo:
        await demo.prompt("hello")
    plans = client.plans()
    assert ["in_progress", "pending", "pending"] == plans[0]
    assert ["completed", "completed", "completed"] == plans[-1]
    assert all(3 == len(p) for p in plans) and len(plans) >= 3


async def test_demo_writes_only_after_approval(workdir: Path, tmp_path: Path) -> None:
    """The edit is proposed as a diff, asked with all four option kinds, and written once allowed."""
    client = ProjectClient(workdir, answer="allow_once")
    async with agent(DEMO, client, tmp_path / "demo.log") as demo:
        assert "end_turn" == await demo.prompt("show me around")
    target = workdir / "TETHER_DEMO.md"
    [edit] = client.calls("edit")
    [diff] = edit.content or []
    assert ("diff", str(target), None) == (diff.type, getattr(diff, "path", None), getattr(diff, "old_text", ""))
    assert getattr(diff, "new_text", None) == target.read_text()
    assert [[], ["TETHER_DEMO.md"]] == client.files_when_asked  # nothing on disk until the edit was allowed
    tool_call, options = client.permissions[0]
    assert (edit.tool_call_id, "edit") == (tool_call.tool_call_id, tool_call.kind)
    assert {"allow_once", "allow_always", "reject_once", "reject_always"} == {o.kind for o in options}
    assert "completed" == client.statuses(edit.tool_call_id)[-1]


async def test_demo_runs_the_command_in_a_client_terminal(workdir: Path, tmp_path: Path) -> None:
    """The approved command runs through terminal/create and is embedded in the execute tool call."""
    (workdir / "visible.txt").write_text("x")
    client = ProjectClient(workdir, answer="allow_once")
    async with agent(DEMO, client, tmp_path / "demo.log") as demo:
        await demo.prompt("hello")
    [terminal] = client.terminals.values()
    assert ("ls", b"visible.txt" in terminal.output) == (terminal.command, True)
    [run] = client.calls("execute")
    embedded = [c for u in client.updates if isinstance(u, ToolCallProgress) for c in u.content or []]
    assert any(c.type == "terminal" for c in embedded)
    assert "completed" == client.statuses(run.tool_call_id)[-1]
    assert "exited with code 0" in client.text()


async def test_demo_leaves_the_file_untouched_on_rejection(workdir: Path, tmp_path: Path) -> None:
    """Rejecting keeps the file as it was, marks the tool call failed, says so, and runs nothing."""
    target = workdir / "TETHER_DEMO.md"
    target.write_text("original\n")
    client = ProjectClient(workdir, answer="reject_once")
    async with agent(DEMO, client, tmp_path / "demo.log") as demo:
        assert "end_turn" == await demo.prompt("hello")
    assert "original\n" == target.read_text()
    [edit] = client.calls("edit")
    [diff] = edit.content or []
    assert "original\n" == getattr(diff, "old_text", None)
    assert "failed" == client.statuses(edit.tool_call_id)[-1]
    assert "You rejected it" in client.text()
    assert {} == client.terminals


async def test_demo_remembers_always_per_kind(workdir: Path, tmp_path: Path) -> None:
    """After "always allow", the next turn edits and runs without asking again."""
    client = ProjectClient(workdir, answer="allow_always")
    async with agent(DEMO, client, tmp_path / "demo.log") as demo:
        await demo.prompt("first")
        await demo.prompt("second")
    assert ["edit", "execute"] == [tool_call.kind for tool_call, _ in client.permissions]
    assert 2 == (workdir / "TETHER_DEMO.md").read_text().count("- turn ")
    assert 2 == len(client.terminals)
    assert 2 == client.text().count("so I go ahead without asking")


async def test_demo_cancel_mid_turn(workdir: Path, tmp_path: Path) -> None:
    """session/cancel while the demo streams ends the turn with `cancelled`, promptly."""
    client = ProjectClient(workdir)
    async with agent(DEMO, client, tmp_path / "demo.log") as demo:
        turn = asyncio.create_task(demo.prompt("hello"))
        await client.wait_for(lambda: client.chunks())
        await demo.cancel()
        assert "cancelled" == await turn
    # Stopped inside the intro: it never reached the edit, let alone the disk.
    assert ([], [], False) == (client.calls("edit"), client.permissions, (workdir / "TETHER_DEMO.md").exists())


async def test_demo_cancel_while_asking(workdir: Path, tmp_path: Path) -> None:
    """Cancelling during a permission request ends the turn `cancelled`; nothing is written."""
    client = ProjectClient(workdir, answer=None)
    async with agent(DEMO, client, tmp_path / "demo.log") as demo:
        turn = asyncio.create_task(demo.prompt("hello"))
        await client.wait_for(lambda: client.permissions)
        client.cancel_pending()
        await demo.cancel()
        assert "cancelled" == await turn
    [edit] = client.calls("edit")
    assert "failed" == client.statuses(edit.tool_call_id)[-1]
    assert not (workdir / "TETHER_DEMO.md").exists()


# -- the scripted agent --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "reply", "content"),
    [
        ("allow_once", "wrote keep.txt", "hello world"),
        ("allow_always", "wrote keep.txt", "hello world"),
        ("reject_once", "denied keep.txt", "original"),
        ("reject_always", "denied keep.txt", "original"),
    ],
)
async def test_scripted_write_honours_the_answer(
    workdir: Path, tmp_path: Path, kind: PermissionOptionKind, reply: str, content: str
) -> None:
    """`write` writes through the client only when an allow option is chosen."""
    (workdir / "keep.txt").write_text("original")
    client = ProjectClient(workdir, answer=kind)
    async with agent(SCRIPTED, client, tmp_path / "scripted.log") as scripted:
        assert "end_turn" == await scripted.prompt("write keep.txt hello world")
    assert (content, reply) == ((workdir / "keep.txt").read_text(), client.chunks()[-1])
    [(_, options)] = client.permissions
    assert [
        ("allow", "allow_once"),
        ("always", "allow_always"),
        ("reject", "reject_once"),
        ("reject-always", "reject_always"),
    ] == [(o.option_id, o.kind) for o in options]
    [edit] = client.calls("edit")
    assert [("diff", str(workdir / "keep.txt"), "original", "hello world")] == [
        (c.type, getattr(c, "path", None), getattr(c, "old_text", None), getattr(c, "new_text", None))
        for c in edit.content or []
    ]


async def test_scripted_write_new_file_has_no_old_text(workdir: Path, tmp_path: Path) -> None:
    """A new file's diff has old text null."""
    client = ProjectClient(workdir)
    async with agent(SCRIPTED, client, tmp_path / "scripted.log") as scripted:
        await scripted.prompt("write sub/new.txt fresh")
    [edit] = client.calls("edit")
    assert [None] == [getattr(c, "old_text", "") for c in edit.content or []]


async def test_scripted_slow_stops_on_cancel(workdir: Path, tmp_path: Path) -> None:
    """`slow` + session/cancel returns `cancelled` quickly and stops ticking."""
    client = ProjectClient(workdir)
    async with agent(SCRIPTED, client, tmp_path / "scripted.log") as scripted:
        turn = asyncio.create_task(scripted.prompt("slow 100"))
        await client.wait_for(lambda: "tick 2\n" in client.text())
        started = time.monotonic()
        await scripted.cancel()
        assert "cancelled" == await turn
        # Generous bound: the rule is "promptly"; uncancelled, the turn would last 10 s.
        assert time.monotonic() - started < 2 * UNIT
    assert "tick 10\n" not in client.text()


async def test_scripted_cancelled_permission_ends_the_turn(workdir: Path, tmp_path: Path) -> None:
    """A permission answered `cancelled` fails the tool call, writes nothing, stops `cancelled`."""
    client = ProjectClient(workdir, answer=None)
    async with agent(SCRIPTED, client, tmp_path / "scripted.log") as scripted:
        turn = asyncio.create_task(scripted.prompt("write never.txt nope"))
        await client.wait_for(lambda: client.permissions)
        client.cancel_pending()
        await scripted.cancel()
        assert "cancelled" == await turn
    assert not (workdir / "never.txt").exists()
    [edit] = client.calls("edit")
    assert ("failed", "cancelled") == (client.statuses(edit.tool_call_id)[-1], client.chunks()[-1])


async def test_scripted_say_streams_word_by_word(workdir: Path, tmp_path: Path) -> None:
    """`say` streams one word per chunk; the chunks join back to the text."""
    client = ProjectClient(workdir)
    async with agent(SCRIPTED, client, tmp_path / "scripted.log") as scripted:
        assert "end_turn" == await scripted.prompt("say hello from the agent")
    assert ["hello", " from", " the", " agent"] == client.chunks()


async def test_scripted_run_reports_output(workdir: Path, tmp_path: Path) -> None:
    """`run` asks, runs `sh -c` in a client terminal embedded in the tool call, and replies with the output."""
    client = ProjectClient(workdir)
    async with agent(SCRIPTED, client, tmp_path / "scripted.log") as scripted:
        await scripted.prompt("run echo tether-$((6*7))")
    [terminal] = client.terminals.values()
    assert ("sh", ["-c", "echo tether-$((6*7))"]) == (terminal.command, terminal.args)
    assert "tether-42\nexit 0" == client.chunks()[-1]
    [run] = client.calls("execute")
    assert "completed" == client.statuses(run.tool_call_id)[-1]


async def test_scripted_bigout_reports_truncation(workdir: Path, tmp_path: Path) -> None:
    """`bigout` prints more than its output limit and reports the truncated flag."""
    client = ProjectClient(workdir)
    async with agent(SCRIPTED, client, tmp_path / "scripted.log") as scripted:
        await scripted.prompt("bigout 1000")
    [terminal] = client.terminals.values()
    assert (500, "truncated=true bytes=500") == (terminal.limit, client.chunks()[-1])


async def test_scripted_escape_reports_the_refusal(workdir: Path, tmp_path: Path) -> None:
    """`escape` writes outside the project without asking and reports the client's error."""
    outside = tmp_path / "outside.txt"
    client = ProjectClient(workdir)
    async with agent(SCRIPTED, client, tmp_path / "scripted.log") as scripted:
        await scripted.prompt(f"escape {outside}")
    assert client.chunks()[-1].startswith("refused: Invalid params: ")
    assert "outside the project" in client.chunks()[-1]
    assert ([], False) == (client.permissions, outside.exists())


async def test_scripted_plan_and_unknown(workdir: Path, tmp_path: Path) -> None:
    """`plan` sends 3 entries; anything else gets "unknown command"."""
    client = ProjectClient(workdir)
    async with agent(SCRIPTED, client, tmp_path / "scripted.log") as scripted:
        await scripted.prompt("plan")
        await scripted.prompt("dance")
    assert [["completed", "in_progress", "pending"]] == client.plans()
    assert ["unknown command"] == client.chunks()
