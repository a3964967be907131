"""A minimal ACP client for tests: serves ``fs/*`` and ``terminal/*`` naively on one folder.

It is what an editor does for an agent, with no confinement and no UI: files are read
and written as asked, commands run with ``sh -c`` (or the given argv) in their own
process group, and permission requests are answered from a list of ACP option kinds
(``allow_once``, ``allow_always``, ``reject_once``, ``reject_always``, or ``cancelled``;
``hold`` waits until ``release_permissions()`` and then answers ``cancelled``, like a
person who never decides), ``allow_once`` when the list runs out. Everything the agent sends is recorded.

``spawn_agent(argv, env, client, stderr)`` starts an agent subprocess and connects it
(``acp.connect_to_agent`` on its pipes). The same client object can also be handed to
agent code in-process, as the Client it talks to.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import acp
from acp import RequestError, schema
from acp.core import ClientSideConnection

from tests.conftest import UNIT

STDIO_LIMIT = 50 * 1024 * 1024


@dataclass
class NaiveTerminal:
    """One command: its process, output so far and exit."""

    process: asyncio.subprocess.Process
    limit: int | None
    output: bytearray = field(default_factory=bytearray)
    truncated: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)
    pump: asyncio.Task[None] | None = None

    def status(self) -> schema.TerminalExitStatus | None:
        code = self.process.returncode
        if code is None or not self.done.is_set():
            return None
        if code < 0:
            return schema.TerminalExitStatus(signal=signal.Signals(-code).name)
        return schema.TerminalExitStatus(exit_code=code)


def _stop(terminal: NaiveTerminal) -> None:
    if terminal.process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(terminal.process.pid, signal.SIGKILL)


class NaiveClient:
    """The test client (see module doc)."""

    def __init__(self, root: Path, answers: Iterable[str] = ()) -> None:
        self.root = root
        self.answers: deque[str] = deque(answers)
        self.updates: list[Any] = []
        self.permission_requests: list[tuple[schema.ToolCallUpdate, list[schema.PermissionOption]]] = []
        self.commands: list[list[str]] = []
        self.terminals: dict[str, NaiveTerminal] = {}
        self.killed: list[str] = []
        self.changed = asyncio.Condition()
        self._held = asyncio.Event()

    def release_permissions(self) -> None:
        """Let held permission requests answer ``cancelled``."""
        self._held.set()

    # -- what the agent asks ----------------------------------------------------------
    async def session_update(self, session_id: str, update: Any, **kwargs: Any) -> None:
        self.updates.append(update)
        async with self.changed:
            self.changed.notify_all()

    async def request_permission(
        self, session_id: str, tool_call: schema.ToolCallUpdate, options: list[schema.PermissionOption], **kwargs: Any
    ) -> schema.RequestPermissionResponse:
        self.permission_requests.append((tool_call, options))
        async with self.changed:
            self.changed.notify_all()
        kind = self.answers.popleft() if self.answers else "allow_once"
        if kind == "hold":
            await self._held.wait()
            kind = "cancelled"
        if kind == "cancelled":
            return schema.RequestPermissionResponse(outcome=schema.DeniedOutcome(outcome="cancelled"))
        option = next(o for o in options if o.kind == kind)
        return schema.RequestPermissionResponse(
            outcome=schema.AllowedOutcome(outcome="selected", option_id=option.option_id)
        )

    async def read_text_file(
        self, session_id: str, path: str, line: int | None = None, limit: int | None = None, **kwargs: Any
    ) -> schema.ReadTextFileResponse:
        try:
            text = await asyncio.to_thread(Path(path).read_text, encoding="utf-8")
        except FileNotFoundError:
            raise RequestError.resource_not_found(path) from None
        except OSError as exc:
            raise RequestError.invalid_params({"message": f"{path}: {exc.strerror}"}) from None
        if line is not None or limit is not None:
            lines = text.splitlines(keepends=True)
            start = max((line or 1) - 1, 0)
            text = "".join(lines[start : None if limit is None else start + limit])
        return schema.ReadTextFileResponse(content=text)

    async def write_text_file(self, session_id: str, path: str, content: str, **kwargs: Any) -> None:
        def write() -> None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(content, encoding="utf-8")

        await asyncio.to_thread(write)

    async def create_terminal(
        self,
        session_id: str,
        command: str,
        args: list[str] | None = None,
        env: list[schema.EnvVariable] | None = None,
        cwd: str | None = None,
        output_byte_limit: int | None = None,
        **kwargs: Any,
    ) -> schema.CreateTerminalResponse:
        argv = [command, *args] if args else ["/bin/sh", "-c", command]
        self.commands.append(argv)
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd or self.root,
            env=dict(os.environ) | {v.name: v.value for v in env or []},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        terminal = NaiveTerminal(process, output_byte_limit)
        terminal_id = f"term-{len(self.terminals) + 1}"
        self.terminals[terminal_id] = terminal
        terminal.pump = asyncio.create_task(self._pump(terminal))
        return schema.CreateTerminalResponse(terminal_id=terminal_id)

    async def _pump(self, terminal: NaiveTerminal) -> None:
        assert terminal.process.stdout is not None
        while data := await terminal.process.stdout.read(65536):
            terminal.output += data
            if terminal.limit is not None and len(terminal.output) > terminal.limit:
                del terminal.output[: len(terminal.output) - terminal.limit]
                terminal.truncated = True
        await terminal.process.wait()
        terminal.done.set()

    async def terminal_output(self, session_id: str, terminal_id: str, **kwargs: Any) -> schema.TerminalOutputResponse:
        terminal = self.terminals[terminal_id]
        text = terminal.output.decode(errors="replace")
        return schema.TerminalOutputResponse(output=text, truncated=terminal.truncated, exit_status=terminal.status())

    async def wait_for_terminal_exit(
        self, session_id: str, terminal_id: str, **kwargs: Any
    ) -> schema.WaitForTerminalExitResponse:
        terminal = self.terminals[terminal_id]
        await terminal.done.wait()
        status = terminal.status()
        assert status is not None
        return schema.WaitForTerminalExitResponse(exit_code=status.exit_code, signal=status.signal)

    async def kill_terminal(self, session_id: str, terminal_id: str, **kwargs: Any) -> None:
        self.killed.append(terminal_id)
        _stop(self.terminals[terminal_id])
        async with self.changed:
            self.changed.notify_all()

    async def release_terminal(self, session_id: str, terminal_id: str, **kwargs: Any) -> None:
        _stop(self.terminals[terminal_id])

    async def aclose(self) -> None:
        """Kill every command still running and reap it (the end of a test)."""
        for terminal in self.terminals.values():
            _stop(terminal)
            if terminal.pump is not None:
                await terminal.pump

    async def create_elicitation(self, message: str, mode: Any, **kwargs: Any) -> Any:
        raise RequestError.method_not_found("elicitation/create")

    async def complete_elicitation(self, elicitation_id: str, **kwargs: Any) -> None:
        return None

    def on_connect(self, conn: Any) -> None:
        return None

    async def ext_method(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        raise RequestError.method_not_found(method)

    async def ext_notification(self, method: str, params: dict[str, Any]) -> None:
        return None

    # -- what tests read ----------------------------------------------------------------
    def of_kind(self, session_update: str) -> list[Any]:
        """The updates of one ``sessionUpdate`` kind, in order."""
        return [u for u in self.updates if u.session_update == session_update]

    def text(self, kind: str = "agent_message_chunk") -> str:
        """All streamed text of one kind (agent messages by default), joined."""
        return "".join(u.content.text for u in self.of_kind(kind))

    def tool_calls(self) -> dict[str, dict[str, Any]]:
        """Each tool call's fields as they stand after all its updates, by id, in start order."""
        calls: dict[str, dict[str, Any]] = {}
        for update in self.updates:
            if update.session_update in ("tool_call", "tool_call_update"):
                fields = update.model_dump(exclude_none=True, exclude={"session_update", "field_meta"})
                calls.setdefault(update.tool_call_id, {}).update(fields)
        return calls

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds, re-checked at every update (wrap it in ``asyncio.timeout``)."""
        async with self.changed:
            await self.changed.wait_for(predicate)

    def capabilities(self) -> schema.ClientCapabilities:
        return schema.ClientCapabilities(
            fs=schema.FileSystemCapabilities(read_text_file=True, write_text_file=True), terminal=True
        )


@contextlib.asynccontextmanager
async def spawn_agent(
    argv: Sequence[str], env: Mapping[str, str], client: NaiveClient, stderr: BinaryIO
) -> AsyncIterator[tuple[ClientSideConnection, asyncio.subprocess.Process]]:
    """Start an ACP agent subprocess and connect ``client`` to it; stops it on exit."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=stderr,
        env=dict(env),
        limit=STDIO_LIMIT,
    )
    assert process.stdin is not None and process.stdout is not None
    conn = acp.connect_to_agent(client, process.stdin, process.stdout)
    try:
        yield conn, process
    finally:
        await conn.close()
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 5 * UNIT)
            except TimeoutError:
                process.kill()
                await process.wait()
        await client.aclose()
