"""HostSession: one agent, one transcript, its approvals, and whoever mirrors them.

The session owns the agent process and is the single place where prompts, approvals and
cancellation meet. Sinks (the terminal, the relay link) receive every protocol message
the transcript produces through ``deliver``; both screens therefore show the same thing,
and a prompt or a decision from either goes through the same methods here.

Lifecycle: ``await start()``, then ``submit_prompt`` / ``decide`` / ``cancel`` from any
screen, ``await close(reason)`` once (idempotent). ``ended`` is set when it is over, by
``close`` or because the agent exited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import acp
from acp import RequestError, schema

import tether
from tether.errors import AgentNotFound
from tether.host import agent_process
from tether.host.acp_client import CAPABILITIES, HostClient
from tether.host.agent_process import AgentSpec
from tether.host.approvals import Approval, ApprovalBook, Option, State
from tether.host.files import ProjectFiles
from tether.host.terminals import Terminal, Terminals
from tether.host.transcript import Transcript
from tether.protocol.messages import Ended, Message, Turn

log = logging.getLogger(__name__)

APPROVAL_TIMEOUT = 600.0  # seconds; an unanswered approval resolves as a rejection
AGENT_START_TIMEOUT = 60.0  # initialize + session/new; npx may install on first run
TERMINAL_REFRESH = 0.1  # seconds between live output refreshes of one terminal


class Sink(Protocol):
    """Something that mirrors the session (the terminal UI, the relay link)."""

    def deliver(self, message: Message) -> None: ...


class HostSession:
    """See module doc."""

    def __init__(
        self,
        root: Path,
        agent: AgentSpec,
        log_path: Path,
        approval_timeout: float = APPROVAL_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.root = root.resolve()
        self.agent = agent
        self.log_path = log_path
        self.approval_timeout = approval_timeout
        self.clock = clock
        self.transcript = Transcript(self._terminal_view)
        self.approvals = ApprovalBook()
        self.files = ProjectFiles(self.root)
        self.terminals = Terminals(self.root, self._terminal_changed)
        self.sinks: list[Sink] = []
        self.running = False
        self.ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.info = {"title": self.root.name, "agent": agent.name, "cwd": str(self.root), "protocol": 1}
        self._waiters: dict[str, asyncio.Future[Approval]] = {}
        self._prompts: asyncio.Queue[str] = asyncio.Queue()
        self._refresh_scheduled: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._process: asyncio.subprocess.Process | None = None
        self._conn: acp.core.ClientSideConnection | None = None
        self._acp_session = ""
        self.closing = False

    # -- mirroring ---------------------------------------------------------------------

    def emit(self, messages: list[Message]) -> None:
        """Hand messages to every sink, in order."""
        for message in messages:
            for sink in list(self.sinks):
                sink.deliver(message)

    def notice(self, text: str) -> None:
        """A system message in the transcript (shown on every screen)."""
        self.emit(self.transcript.message("system", text))

    def _terminal_view(self, terminal_id: str) -> dict[str, Any] | None:
        terminal = self.terminals.find(terminal_id)
        if terminal is None:
            return None
        code = terminal.exit_code if terminal.signal is None else -1
        return {
            "command": terminal.command,
            "output": terminal.text(),
            "exit_code": code if terminal.done.is_set() else None,
            "truncated": terminal.truncated,
        }

    def _terminal_changed(self, terminal: Terminal) -> None:
        # Coalesce output refreshes: whole output per refresh, at most every 100 ms.
        if terminal.done.is_set():
            self._refresh_scheduled.discard(terminal.id)
            self.emit(self.transcript.terminal_changed(terminal.id))
        elif terminal.id not in self._refresh_scheduled:
            self._refresh_scheduled.add(terminal.id)
            asyncio.get_running_loop().call_later(TERMINAL_REFRESH, self._refresh_terminal, terminal.id)

    def _refresh_terminal(self, terminal_id: str) -> None:
        if terminal_id in self._refresh_scheduled:
            self._refresh_scheduled.discard(terminal_id)
            self.emit(self.transcript.terminal_changed(terminal_id))

    def on_update(self, update: Any) -> None:
        """An ACP session/update from the agent."""
        self.emit(self.transcript.apply(update))

    # -- agent process -----------------------------------------------------------------

    async def start(self) -> None:
        """Start the agent and open its ACP session; AgentNotFound if that fails."""
        self._process = await agent_process.spawn(self.agent, self.root, self.log_path)
        assert self._process.stdin is not None and self._process.stdout is not None
        client = HostClient(self, self.files, self.terminals)
        self._conn = acp.connect_to_agent(client, self._process.stdin, self._process.stdout)
        try:
            async with asyncio.timeout(AGENT_START_TIMEOUT):
                await self._conn.initialize(
                    protocol_version=acp.PROTOCOL_VERSION,
                    client_capabilities=CAPABILITIES,
                    client_info=schema.Implementation(name="tether", version=tether.__version__),
                )
                new = await self._conn.new_session(cwd=str(self.root), mcp_servers=[])
        except (TimeoutError, RequestError, ConnectionError, OSError) as exc:
            await self._stop_agent()
            reason = "did not answer in time" if isinstance(exc, TimeoutError) else f"failed: {exc}"
            raise AgentNotFound(
                f"the agent {self.agent.name!r} {reason} while starting; its log is {self.log_path}"
            ) from None
        self._acp_session = new.session_id
        self._tasks.append(asyncio.create_task(self._prompt_loop()))
        self._tasks.append(asyncio.create_task(self._watch_agent()))

    async def _watch_agent(self) -> None:
        assert self._process is not None
        code = await self._process.wait()
        if not self.closing:
            self.notice(f"The agent exited (code {code}). Its log is {self.log_path}.")
            await self.close(f"agent exited with code {code}")

    async def _stop_agent(self) -> None:
        process = self._process
        if process is None or process.returncode is not None:
            return
        # ACP agents end when stdin closes; a stubborn one gets SIGTERM, then SIGKILL.
        if process.stdin is not None:
            process.stdin.close()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                await asyncio.wait_for(process.wait(), timeout=1.0)
                return
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, sig)
        await process.wait()

    # -- prompts and turns -------------------------------------------------------------

    def submit_prompt(self, text: str) -> None:
        """Queue a prompt; turns run one at a time, in the order prompts arrive."""
        text = text.strip()
        if text and not self.ended.done():
            self._prompts.put_nowait(text)

    async def _prompt_loop(self) -> None:
        assert self._conn is not None
        while True:
            text = await self._prompts.get()
            self.emit(self.transcript.message("user", text))
            self.running = True
            self.emit([Turn(running=True)])
            stop_reason = "error"
            try:
                response = await self._conn.prompt(session_id=self._acp_session, prompt=[acp.text_block(text)])
                stop_reason = response.stop_reason
            except RequestError as exc:
                self.notice(f"The agent reported an error: {exc}")
            except ConnectionError:
                return  # the agent is gone; _watch_agent ends the session
            finally:
                self._resolve_pending(State.CANCELLED)
                self.running = False
                self.emit([Turn(running=False, stop_reason=stop_reason)])

    async def cancel(self) -> None:
        """Stop the current turn (ACP session/cancel); pending approvals become cancelled."""
        # ACP: the client must answer every pending permission request with "cancelled".
        self._resolve_pending(State.CANCELLED)
        if self.running and self._conn is not None:
            with contextlib.suppress(ConnectionError, OSError):
                await self._conn.cancel(session_id=self._acp_session)

    # -- approvals ---------------------------------------------------------------------

    async def ask_permission(
        self, tool_call: schema.ToolCallUpdate, options: list[schema.PermissionOption]
    ) -> schema.RequestPermissionResponse:
        """Show the request on every screen; first answer wins; timeout rejects."""
        self.emit(self.transcript.apply(tool_call))
        entry = self.transcript.entries.get(tool_call.tool_call_id, {})
        approval = self.approvals.open(
            tool_call_id=tool_call.tool_call_id,
            title=tool_call.title or entry.get("title", "tool call"),
            kind=tool_call.kind or entry.get("kind", "other"),
            options=[Option(o.option_id, o.name, o.kind) for o in options],
            deadline=self.clock() + self.approval_timeout,
        )
        waiter: asyncio.Future[Approval] = asyncio.get_running_loop().create_future()
        self._waiters[approval.id] = waiter
        self.emit(self.transcript.put(approval.to_entry()))
        timer = asyncio.get_running_loop().call_later(self.approval_timeout, self._expire, approval.id)
        try:
            final = await waiter
        finally:
            timer.cancel()
            self._waiters.pop(approval.id, None)
        if final.outcome is not None:
            return schema.RequestPermissionResponse(
                outcome=schema.AllowedOutcome(option_id=final.outcome, outcome="selected")
            )
        return schema.RequestPermissionResponse(outcome=schema.DeniedOutcome(outcome="cancelled"))

    def _settle(self, approval: Approval | None) -> bool:
        if approval is None:
            return False
        self.emit(self.transcript.put(approval.to_entry()))
        waiter = self._waiters.get(approval.id)
        if waiter is not None and not waiter.done():
            waiter.set_result(approval)
        return True

    def decide(self, approval_id: str, option_id: str, by: str) -> bool:
        """Answer a pending approval; False if it was already settled or unknown."""
        return self._settle(self.approvals.decide(approval_id, option_id, by))

    def _expire(self, approval_id: str) -> None:
        if self._settle(self.approvals.expire(approval_id)):
            self.notice("An approval timed out and was denied.")

    def _resolve_pending(self, state: State) -> None:
        for approval in self.approvals.pending():
            if state is State.CANCELLED:
                self._settle(self.approvals.cancel(approval.id))

    # -- ending ------------------------------------------------------------------------

    async def close(self, reason: str) -> None:
        """End the session: every screen is told, the agent and its commands stop."""
        if self.closing:
            return
        self.closing = True
        self._resolve_pending(State.CANCELLED)
        self.emit([Ended(reason=reason)])
        self.terminals.kill_all()
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        await self._stop_agent()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
        if not self.ended.done():
            self.ended.set_result(reason)
