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
from tether.errors import AgentNotFound, OutsideProject
from tether.host import agent_process
from tether.host.acp_client import CAPABILITIES, HostClient
from tether.host.agent_process import AgentSpec
from tether.host.approvals import Approval, ApprovalBook, Option
from tether.host.controls import Controls
from tether.host.files import ProjectFiles
from tether.host.terminals import Terminal, Terminals
from tether.host.transcript import Transcript
from tether.protocol.messages import Ended, Message, Turn

log = logging.getLogger(__name__)

APPROVAL_TIMEOUT = 600.0  # seconds; an unanswered approval resolves as a rejection
AGENT_START_TIMEOUT = 120.0  # initialize + session/new; npx may install the agent on first run
MAX_RESTARTS = 3  # an agent that can reload its session is restarted this often at most
AUTH_REQUIRED = -32000  # ACP: the agent needs authenticate before session/new
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
        self.controls = Controls(agent.preset)
        self.login_methods: list[Any] = []
        self.ready = asyncio.Event()  # the ACP session is open: prompts may run
        self._can_load = False
        self._loading = False
        self._restarts = 0
        self._always_withheld = False
        self.skip_permissions = False  # --dangerously-skip-permissions (never with Remote Control)
        self._ended_sent = False

    # -- mirroring ---------------------------------------------------------------------

    def emit(self, messages: list[Message]) -> None:
        """Hand messages to every sink, in order; nothing follows ``ended``."""
        if self._ended_sent:
            return
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
        if self._loading:
            return  # session/load replays history the transcript already has
        if isinstance(update, schema.CurrentModeUpdate):
            self.controls.current_mode = update.current_mode_id
            self._controls_changed()
            if self.controls.remote and self.controls.is_self_approving(update.current_mode_id):
                self.notice(f"The agent switched itself to {update.current_mode_id!r}, which approves tools by itself.")
                asyncio.get_running_loop().create_task(self.require_asking_mode())
            return
        if isinstance(update, schema.ConfigOptionUpdate):
            self.controls.load(None, update.config_options)
            self._controls_changed()
            return
        self.emit(self.transcript.apply(update))

    def _controls_changed(self) -> None:
        self.emit(self.transcript.put(self.controls.entry()))

    # -- agent process -----------------------------------------------------------------

    async def start(self) -> None:
        """Start the agent and open its ACP session; AgentNotFound if that fails.

        An agent that needs a login first leaves the session waiting (``login`` entry on
        every screen); prompts queue until ``authenticate`` or ``retry_login`` opens it.
        """
        try:
            async with asyncio.timeout(AGENT_START_TIMEOUT):
                init = await self._launch()
                self.login_methods = list(init.auth_methods or [])
                await self._open_session()
        except (TimeoutError, RequestError, ConnectionError, OSError) as exc:
            await self._stop_agent()
            reason = "did not answer in time" if isinstance(exc, TimeoutError) else f"failed: {exc}"
            raise AgentNotFound(
                f"the agent {self.agent.name!r} {reason} while starting; its log is {self.log_path}"
            ) from None
        self._tasks.append(asyncio.create_task(self._prompt_loop()))

    async def _launch(self) -> schema.InitializeResponse:
        self._process = await agent_process.spawn(self.agent, self.root, self.log_path)
        assert self._process.stdin is not None and self._process.stdout is not None
        client = HostClient(self, self.files, self.terminals)
        self._conn = acp.connect_to_agent(client, self._process.stdin, self._process.stdout)
        init = await self._conn.initialize(
            protocol_version=acp.PROTOCOL_VERSION,
            client_capabilities=CAPABILITIES,
            client_info=schema.Implementation(name="tether", version=tether.__version__),
        )
        capabilities = init.agent_capabilities
        self._can_load = bool(capabilities and capabilities.load_session)
        self._tasks.append(asyncio.create_task(self._watch_agent(self._process)))
        return init

    async def _open_session(self) -> None:
        """session/new; an auth-required error shows the agent's login methods instead."""
        assert self._conn is not None
        try:
            new = await self._conn.new_session(cwd=str(self.root), mcp_servers=[])
        except RequestError as exc:
            if exc.code != AUTH_REQUIRED:
                raise
            self.emit(self.transcript.put(self._login_entry("needed")))
            self.notice(f"The agent {self.agent.name!r} needs a login first: {exc}")
            return
        self._acp_session = new.session_id
        self.controls.load(new.modes, new.config_options)
        if "login" in self.transcript.entries:
            self.emit(self.transcript.put(self._login_entry("done")))
        if self.controls.modes or self.controls.options:
            self._controls_changed()
        self.ready.set()

    def _login_entry(self, state: str) -> dict[str, Any]:
        methods = []
        for method in self.login_methods:
            kind = getattr(method, "type", None) or "agent"
            item: dict[str, Any] = {"id": method.id, "name": method.name, "description": method.description}
            item["kind"] = kind
            if kind == "terminal":
                item["command"] = " ".join([*self.agent.argv, *(getattr(method, "args", None) or [])])
            if kind == "env_var":
                item["vars"] = [v.name for v in getattr(method, "vars", [])]
            methods.append(item)
        if not methods and self.agent.preset and self.agent.preset.login:
            methods.append({"id": "local", "name": "Log in on the machine", "description": None, "kind": "terminal",
                            "command": self.agent.preset.login})  # fmt: skip
        return {"id": "login", "type": "login", "state": state, "methods": methods}

    async def authenticate(self, method_id: str) -> bool:
        """Run one of the agent's own login methods, then open the session; False if it failed."""
        if self.ready.is_set() or self._conn is None:
            return False
        try:
            await self._conn.authenticate(method_id=method_id)
        except RequestError as exc:
            self.notice(f"Login with {method_id!r} failed: {exc}")
            return False
        return await self.retry_login()

    async def retry_login(self) -> bool:
        """Try session/new again (after a login done on the machine)."""
        if self.ready.is_set():
            return True
        try:
            await self._open_session()
        except RequestError as exc:
            self.notice(f"The agent still cannot start a session: {exc}")
        return self.ready.is_set()

    # -- modes and options -------------------------------------------------------------

    async def set_mode(self, mode_id: str) -> bool:
        """Switch the agent's mode; refused (False) for a self-approving mode under Remote Control."""
        if self.controls.remote and self.controls.is_self_approving(mode_id):
            self.notice(f"Mode {mode_id!r} approves tools by itself; it is not allowed while Remote Control is on.")
            return False
        if self._conn is None or not self.ready.is_set():
            return False
        try:
            await self._conn.set_session_mode(session_id=self._acp_session, mode_id=mode_id)
        except RequestError as exc:
            self.notice(f"The agent refused mode {mode_id!r}: {exc}")
            return False
        self.controls.current_mode = mode_id
        self._controls_changed()
        return True

    async def set_option(self, option_id: str, value: str | bool) -> bool:
        """Change a config option; the same refusal rule as modes applies to mode-like options."""
        if self.controls.remote and self.controls.refuses_option(option_id, value):
            self.notice(f"{option_id} = {value!r} approves tools by itself; not allowed while Remote Control is on.")
            return False
        if self._conn is None or not self.ready.is_set() or self.controls.option(option_id) is None:
            return False
        try:
            response = await self._conn.set_config_option(
                config_id=option_id, session_id=self._acp_session, value=value
            )
        except RequestError as exc:
            self.notice(f"The agent refused {option_id} = {value!r}: {exc}")
            return False
        self.controls.load(None, response.config_options if response else None)
        self._controls_changed()
        return True

    async def require_asking_mode(self) -> bool:
        """Put the agent in a mode where it asks before acting; False if no such mode is known."""
        current = self.controls.current_mode
        if current is None or not self.controls.is_self_approving(current):
            return True
        target = self.controls.asking_mode()
        if target is None:
            return False
        self.notice(f"Switching the agent to mode {target!r}, where it asks before acting.")
        return await self.set_mode(target)

    async def set_remote(self, on: bool) -> bool:
        """Mark Remote Control on or off; on requires (and selects) a mode where the agent asks."""
        if on and self.ready.is_set() and not await self.require_asking_mode():
            return False
        self.controls.remote = on
        if self.controls.modes or self.controls.options:
            self._controls_changed()
        return True

    async def _watch_agent(self, process: asyncio.subprocess.Process) -> None:
        code = await process.wait()
        if self.closing or process is not self._process:
            return
        if self._can_load and self._acp_session and self._restarts < MAX_RESTARTS:
            self._restarts += 1
            self.notice(f"The agent exited (code {code}); restarting it and reattaching to its session.")
            if await self._reattach():
                return
        self.notice(f"The agent exited (code {code}). Its log is {self.log_path}.")
        await self.close(f"agent exited with code {code}")

    async def _reattach(self) -> bool:
        """Start a new agent process and session/load the same session (its history is not re-shown)."""
        self._cancel_pending()
        try:
            async with asyncio.timeout(AGENT_START_TIMEOUT):
                await self._launch()
                assert self._conn is not None
                self._loading = True
                try:
                    await self._conn.load_session(cwd=str(self.root), session_id=self._acp_session, mcp_servers=[])
                finally:
                    self._loading = False
        except (TimeoutError, RequestError, ConnectionError, OSError) as exc:
            self.notice(f"Reattaching failed: {exc}")
            return False
        self.notice("The agent is back, with its session.")
        return True

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
        while True:
            text = await self._prompts.get()
            if not self.ready.is_set():
                self.notice("The prompt waits until the agent is logged in.")
                await self.ready.wait()
            assert self._conn is not None
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
                self.notice("The agent went away during the turn.")
            finally:
                self._cancel_pending()
                self.running = False
                self.emit([Turn(running=False, stop_reason=stop_reason)])

    async def cancel(self) -> None:
        """Stop the current turn (ACP session/cancel); pending approvals become cancelled."""
        # ACP: the client must answer every pending permission request with "cancelled".
        self._cancel_pending()
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
        title = tool_call.title or entry.get("title", "tool call")
        outside = self._paths_outside(tool_call)
        if outside:
            # Agents that edit natively (Claude Code) are not held to the fs/* boundary: say so.
            title = f"{title} — OUTSIDE the project: {', '.join(outside)}"
        approval = self.approvals.open(
            tool_call_id=tool_call.tool_call_id,
            title=title,
            kind=tool_call.kind or entry.get("kind", "other"),
            options=self._offered(options),
            deadline=self.clock() + self.approval_timeout,
        )
        waiter: asyncio.Future[Approval] = asyncio.get_running_loop().create_future()
        self._waiters[approval.id] = waiter
        self.emit(self.transcript.put(approval.to_entry()))
        allow = approval.option_of_kind("allow_once", "allow_always")
        if self.skip_permissions and not self.controls.remote and allow is not None:
            # --dangerously-skip-permissions, local only: Remote Control refuses to start with it.
            self.decide(approval.id, allow.option_id, by="flag")
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

    def _offered(self, options: list[schema.PermissionOption]) -> list[Option]:
        """The options shown on every screen: all of them, except an "allow always" that would
        silently put the agent in a self-approving mode while Remote Control is on (rule 4)."""
        preset = self.agent.preset
        silent_mode = preset.always_enters_mode if preset else None
        offered = [Option(o.option_id, o.name, o.kind) for o in options]
        if self.controls.remote and silent_mode and self.controls.is_self_approving(silent_mode):
            kept = [o for o in offered if o.kind != "allow_always"]
            if len(kept) < len(offered) and kept:
                if not self._always_withheld:
                    self._always_withheld = True
                    self.notice(
                        f"'Always allow' is not offered under Remote Control: {self.agent.name} would switch "
                        f"itself to {silent_mode!r} and approve later edits by itself."
                    )
                return kept
        return offered

    def _paths_outside(self, tool_call: schema.ToolCallUpdate) -> list[str]:
        """Paths the tool call names (locations, diffs, raw input) that leave the project folder."""
        paths = [loc.path for loc in tool_call.locations or []]
        paths += [c.path for c in tool_call.content or [] if isinstance(c, schema.FileEditToolCallContent)]
        raw = tool_call.raw_input if isinstance(tool_call.raw_input, dict) else {}
        paths += [str(raw[key]) for key in ("file_path", "path", "notebook_path") if isinstance(raw.get(key), str)]
        outside = []
        for path in dict.fromkeys(paths):
            try:
                self.files.resolve(path)
            except OutsideProject:
                outside.append(path)
        return outside

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

    def _cancel_pending(self) -> None:
        for approval in self.approvals.pending():
            self._settle(self.approvals.cancel(approval.id))

    # -- ending ------------------------------------------------------------------------

    async def close(self, reason: str) -> None:
        """End the session: every screen is told, the agent and its commands stop."""
        if self.closing:
            return
        self.closing = True
        self._cancel_pending()
        self.emit([Ended(reason=reason)])
        self._ended_sent = True
        await asyncio.sleep(0)  # let the SDK send the "cancelled" answers before stdin closes
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
