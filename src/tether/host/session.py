"""HostSession: the asyncio shell around the session core; it only pumps.

Everything that happens (an agent update or request, a frame from the viewer, a line at
the terminal, a finished agent call, a timer) becomes a core event and goes through
``handle``, the one door in; the core's effects come back out and are carried out here:
messages to the screens (sinks), answers to the agent's waiting requests, agent calls
(run as tasks whose results are events again), the approval timer, the end.

Calling contract: ``await start()`` (AgentNotFound if the agent cannot start), add sinks,
``handle(event)`` from any screen, ``await close(reason)`` once (idempotent); ``ended``
resolves with the reason when the session is over, by ``close`` or because the agent
exited. ``handle`` may be called from inside an effect (a sink that needs a snapshot):
such events queue and run after the current one, never re-entering the core.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol

from acp import RequestError, schema

from tether.errors import AgentNotFound, TetherError
from tether.host.acp_client import HostClient
from tether.host.agent_connection import AUTH_REQUIRED, AgentConnection, LoginRequired
from tether.host.agent_process import AgentSpec, agent_environment, log_tail
from tether.host.core import effects as fx
from tether.host.core import events as ev
from tether.host.core.approvals import Option
from tether.host.core.session import AgentInfo, SessionCore
from tether.host.files import ProjectFiles
from tether.host.output_pump import OutputPump
from tether.host.paired import AuditLog
from tether.host.terminals import Terminal, Terminals
from tether.protocol.attachments import Attachment
from tether.protocol.messages import Message

log = logging.getLogger(__name__)

APPROVAL_TIMEOUT = 600.0  # seconds; an unanswered approval resolves as a rejection
AGENT_START_TIMEOUT = 120.0  # initialize + session/new; npx may install the agent on first run
AGENT_CALL_TIMEOUT = 60.0  # seconds an agent may take to switch modes
AGENT_ERRORS = (TimeoutError, RequestError, ConnectionError, OSError, TetherError)


class Sink(Protocol):
    """A screen that mirrors the session (the terminal UI, the relay link), by name."""

    name: str

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
        skip_permissions: bool = False,
    ) -> None:
        self.root = root.resolve()
        self.spec = agent
        self.log_path = log_path
        self.clock = clock
        self.files = ProjectFiles(self.root)
        self.core = SessionCore(str(self.root), AgentInfo(agent.name, agent.argv, agent.preset), self._resolve,
                                approval_timeout, skip_permissions, run=secrets.token_urlsafe(9))  # fmt: skip
        self.output = OutputPump(self.handle)
        self.terminals = Terminals(self.root, self.output.changed, agent.sandbox)
        self.agent = AgentConnection(agent, self.root, log_path, HostClient(self, self.files, self.terminals))
        self.sinks: list[Sink] = []
        self.audit = AuditLog()
        self.ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.on_remote_end: Callable[[str], None] | None = None
        self.remote_refusal: str | None = None
        self._inbox: deque[ev.Event] = deque()
        self._handling = False
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._requests = 0
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._settled = asyncio.Event()  # no switch back to an asking mode is in flight
        self._settled.set()

    def _resolve(self, path: str) -> str | None:
        try:
            return str(self.files.resolve(path))
        except TetherError:
            return None

    # -- the one door ------------------------------------------------------------------

    def handle(self, event: ev.Event) -> None:
        """Run ``event`` through the core and carry out its effects (see module doc)."""
        self._inbox.append(event)
        if self._handling:
            return
        self._handling = True
        try:
            while self._inbox:
                for effect in self.core.handle(self._inbox.popleft(), self.clock()):
                    self._carry_out(effect)
        finally:
            self._handling = False
            if self.core.enforcing:
                self._settled.clear()
            else:
                self._settled.set()

    def _carry_out(self, effect: fx.Effect) -> None:
        if isinstance(effect, fx.Show):
            for sink in list(self.sinks):
                if effect.to is None or sink.name == effect.to:
                    try:
                        sink.deliver(effect.message)
                    except Exception:  # one broken screen must not stop the others
                        log.exception("the %s screen failed to take a message", sink.name)
        elif isinstance(effect, fx.Answer | fx.Permit):
            waiter = self._waiting.pop(effect.request, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(effect)
        elif isinstance(effect, fx.StartTurn):
            self.spawn(self._turn(effect.text, effect.attachments), "the turn")
        elif isinstance(effect, fx.CancelTurn):
            self.spawn(self.agent.cancel(), "stopping the turn")
        elif isinstance(effect, fx.ChangeMode | fx.ChangeOption):
            self.spawn(self._change(effect), "changing the agent's mode")
        elif isinstance(effect, fx.Login):
            self.spawn(self._login(effect.method_id), "the login")
        elif isinstance(effect, fx.Reattach):
            self.spawn(self._reattach(), "restarting the agent")
        elif isinstance(effect, fx.WakeAt):
            self._wake_at(effect.at)
        elif isinstance(effect, fx.EndRemote):
            self.remote_refusal = effect.reason
            if self.on_remote_end is not None:
                self.on_remote_end(effect.reason)
        elif isinstance(effect, fx.Audit):
            try:
                self.audit.append(effect.record)
            except OSError:  # the decision stands; a full disk must not stop the session
                log.exception("could not append to the audit log")
        elif isinstance(effect, fx.EndSession):
            self.spawn(self._shut_down(effect.reason), "ending the session")

    def spawn(self, work: Coroutine[Any, Any, Any], what: str) -> None:
        """Run ``work`` as a task whose failure is logged and shown, never lost."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._task_done(done, what))

    def _task_done(self, task: asyncio.Task[Any], what: str) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        log.error("%s failed", what, exc_info=exc)
        self.handle(ev.Notice(f"Internal error in {what}: {exc!r}. Details are in tether's log."))

    def _wake_at(self, at: float | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if at is not None:
            delay = max(0.0, at - self.clock())
            self._timer = asyncio.get_running_loop().call_later(delay, self.handle, ev.Tick())

    # -- the agent ---------------------------------------------------------------------

    async def start(self) -> None:
        """Start the agent and open its ACP session; AgentNotFound if that fails.

        An agent that needs a login first leaves the session waiting (``login`` entry on
        every screen); prompts queue until a login opens it.
        """
        try:
            async with asyncio.timeout(AGENT_START_TIMEOUT):
                await self.agent.start()
                self._watch_exit()
                await self._open()
        except AGENT_ERRORS as exc:
            await self.agent.stop()
            reason = "did not answer in time" if isinstance(exc, TimeoutError) else f"failed: {exc}"
            tail = "".join(f"\n  {line}" for line in log_tail(self.log_path))
            said = f"; the last lines of its log ({self.log_path}):{tail}" if tail else f"; its log is {self.log_path}"
            raise AgentNotFound(f"the agent {self.spec.name!r} {reason} while starting{said}") from None

    def _watch_exit(self) -> None:
        process = self.agent.process

        async def watch() -> None:
            code = await self.agent.wait_exit()
            if process is self.agent.process and not self.ended.done():
                self.handle(ev.AgentExited(code))

        self.spawn(watch(), "watching the agent")

    async def _open(self) -> None:
        try:
            new = await self.agent.open()
        except LoginRequired as exc:
            self.handle(ev.LoginNeeded(self.agent.auth_methods, str(exc)))
            return
        self.handle(ev.SessionOpened(new.modes, new.config_options, self.agent.can_load, self.agent.accepts))

    async def _login(self, method_id: str | None) -> None:
        try:
            if method_id is not None:
                await self.agent.authenticate(method_id)
            await self._open()
        except RequestError as exc:
            self.handle(ev.CallFailed("login", str(exc)))

    async def _reattach(self) -> None:
        try:
            async with asyncio.timeout(AGENT_START_TIMEOUT):
                loaded = await self.agent.restart()
        except AGENT_ERRORS as exc:
            self.handle(ev.ReattachFailed(str(exc) or type(exc).__name__))
            return
        self._watch_exit()
        self.handle(ev.Reattached())
        if loaded is not None and (loaded.modes or loaded.config_options):
            self.handle(ev.SessionOpened(loaded.modes, loaded.config_options, self.agent.can_load, self.agent.accepts))

    async def _turn(self, text: str, attachments: tuple[Attachment, ...] = ()) -> None:
        try:
            stop_reason = await self.agent.prompt(text, attachments)
        except RequestError as exc:
            if exc.code == AUTH_REQUIRED:  # it needs a login after all: its methods on every screen, /login works
                self.handle(ev.LoginNeeded(self.agent.auth_methods, str(exc)))
            self.handle(ev.TurnEnded("error", f"The agent reported an error: {exc}"))
        except (ConnectionError, OSError):
            self.handle(ev.TurnEnded("error", "The agent went away during the turn."))
        else:
            self.handle(ev.TurnEnded(stop_reason))

    async def _change(self, effect: fx.ChangeMode | fx.ChangeOption) -> None:
        what = "mode" if isinstance(effect, fx.ChangeMode) else "option"
        try:
            if isinstance(effect, fx.ChangeMode):
                await self.agent.set_mode(effect.mode_id)
                self.handle(ev.ModeChanged(effect.mode_id))
            else:
                options = await self.agent.set_option(effect.option_id, effect.value)
                self.handle(ev.OptionsChanged(options))
        except (*AGENT_ERRORS, AssertionError) as exc:
            self.handle(ev.CallFailed(what, str(exc) or type(exc).__name__, effect.enforcing))

    # -- the agent's requests (HostClient's Gate) ---------------------------------------

    def update(self, update: Any) -> None:
        self.handle(ev.AgentUpdate(update))

    async def _ask(self, make: Callable[[int], ev.Event]) -> Any:
        self._requests += 1
        request = self._requests
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[request] = waiter
        self.handle(make(request))
        try:
            return await waiter
        finally:
            self._waiting.pop(request, None)

    async def permission(self, tool_call: schema.ToolCallUpdate, options: tuple[Option, ...]) -> str | None:
        answer: fx.Answer = await self._ask(lambda request: ev.PermissionAsked(request, tool_call, options))
        return answer.option_id

    async def permit_write(self, path: str, shown: str) -> tuple[bool, str]:
        permit: fx.Permit = await self._ask(lambda request: ev.WriteAsked(request, path, shown))
        return permit.allowed, permit.reason

    async def permit_command(self, argv: list[str], cwd: str, env: dict[str, str]) -> tuple[bool, str]:
        event = lambda request: ev.CommandAsked(request, tuple(argv), cwd, tuple(env.items()))  # noqa: E731
        permit: fx.Permit = await self._ask(event)
        return permit.allowed, permit.reason

    def command_environment(self) -> dict[str, str]:
        return agent_environment(self.spec.env_prefixes)

    def terminal_started(self, terminal: Terminal) -> None:
        self.handle(ev.TerminalStarted(terminal.id, terminal.command))

    # -- Remote Control and the end ----------------------------------------------------

    async def set_remote(self, on: bool) -> bool:
        """Remote Control on or off; False (``remote_refusal`` says why) if the rules refuse it.

        Turning it on waits until the agent is in a mode where it asks (the core moves it
        there first), so no URL is handed out while the agent still approves by itself.
        """
        self.remote_refusal = None
        self.handle(ev.RemoteChanged(on))
        if on:
            try:
                async with asyncio.timeout(AGENT_CALL_TIMEOUT):
                    await self._settled.wait()
            except TimeoutError:
                self.handle(ev.CallFailed("mode", "the agent did not answer in time", enforcing=True))
        return self.remote_refusal is None

    async def close(self, reason: str) -> None:
        """End the session: every screen is told, the agent and its commands stop."""
        self.handle(ev.Close(reason))
        await asyncio.shield(self.ended)

    async def _shut_down(self, reason: str) -> None:
        await asyncio.sleep(0)  # let the SDK send the "cancelled" answers before stdin closes
        self._wake_at(None)
        self.terminals.kill_all()
        await self.agent.stop()
        if not self.ended.done():
            self.ended.set_result(reason)
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
