"""SessionCore: one session's rules, as a pure state machine (events in, effects out).

Calling contract: create it, then for everything that happens call
``handle(event, now)`` with the current time of the injected clock, and carry out every
returned effect, in order, before the next call. The core never waits, never reads a
clock and never touches a socket, a process or a file: the one file question it needs
("where does this path resolve, and is it inside the project?") is the ``resolve``
function it is given. Tests drive it with a fixed clock and no I/O
(tests/unit/test_core_session.py).

What lives here, each in one place:

- the phase (phases.py: starting, login needed, ready, turn running, restarting, ended);
- the transcript every screen mirrors (transcript.py);
- every approval, its deadline, who decided it and its outcome (approvals.py), and the
  grants allowed approvals give for writes and commands (policy.py);
- the agent's modes and options and the rule that keeps it asking under Remote Control
  (controls.py);
- the queue of prompts waiting for the agent.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from acp import schema

from tether.host.core import effects as fx
from tether.host.core import events as ev
from tether.host.core import policy
from tether.host.core.approvals import Approval, ApprovalBook
from tether.host.core.controls import Controls
from tether.host.core.phases import Phase, Step, advance
from tether.host.core.transcript import Transcript, tool_entry_id
from tether.protocol.messages import (
    Authenticate,
    Cancel,
    Decide,
    Ended,
    Hello,
    Message,
    Prompt,
    SetMode,
    SetOption,
    Snapshot,
    Turn,
)

MAX_RESTARTS = 3  # an agent that can reload its session is restarted this often at most
LIVE = (Phase.READY, Phase.TURN_RUNNING)
Resolve = Callable[[str], str | None]  # a path -> its resolved absolute form, None if outside


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """What the core knows of the agent: its name, command line and preset facts."""

    name: str
    argv: tuple[str, ...]
    preset: Any = None  # tether.agents.presets.Preset


class SessionCore:
    """See module doc."""

    def __init__(
        self,
        root: str,
        agent: AgentInfo,
        resolve: Resolve,
        approval_timeout: float,
        skip_permissions: bool = False,
    ) -> None:
        self.root = root
        self.agent = agent
        self.resolve = resolve
        self.approval_timeout = approval_timeout
        self.skip_permissions = skip_permissions
        self.phase = Phase.STARTING
        self.transcript = Transcript()
        self.approvals = ApprovalBook()
        self.controls = Controls(agent.preset)
        self.grants: list[policy.Grant] = []
        self.prompts: deque[tuple[str, str]] = deque()  # (text, by)
        self.info: dict[str, Any] = {"title": root.rsplit("/", 1)[-1], "agent": agent.name, "cwd": root,
                                     "protocol": 1}  # fmt: skip
        self.can_load = False
        self.restarts = 0
        self.enforcing = False  # a switch back to an asking mode is in flight
        self._withheld_noticed = False
        self._wake: float | None = None
        self._out: list[fx.Effect] = []
        self._now = 0.0

    # -- the one door ------------------------------------------------------------------

    def handle(self, event: ev.Event, now: float) -> list[fx.Effect]:
        """Apply ``event`` at time ``now``; the effects to carry out, in order."""
        self._out = []
        self._now = now
        if self.phase is not Phase.ENDED:
            HANDLERS[type(event)](self, event)
            self._rewake()
        return self._out

    # -- small helpers -----------------------------------------------------------------

    def _emit(self, messages: list[Message], to: str | None = None) -> None:
        self._out.extend(fx.Show(message, to) for message in messages)

    def _notice(self, text: str) -> None:
        self._emit(self.transcript.message("system", text))

    def _step(self, step: Step) -> None:
        self.phase = advance(self.phase, step)

    def _rewake(self) -> None:
        wake = self.approvals.next_deadline() if self.phase is not Phase.ENDED else None
        if wake != self._wake:
            self._wake = wake
            self._out.append(fx.WakeAt(wake))

    def snapshot(self) -> Snapshot:
        """The whole (bounded) transcript for a screen that joins."""
        entries = self.transcript.snapshot()
        return Snapshot(session=dict(self.info), entries=entries, running=self.phase is Phase.TURN_RUNNING)

    # -- agent lifecycle ---------------------------------------------------------------

    def _opened(self, event: ev.SessionOpened) -> None:
        self.can_load = event.can_load
        self.controls.load(event.modes, event.options)
        if "login" in self.transcript.entries:
            self._emit(self.transcript.put(self._login_entry((), "done")))
        self._step(Step.OPENED)
        if self.controls.modes or self.controls.options:
            self._controls_changed()
        self._police()
        self._next_prompt()

    def _login_needed(self, event: ev.LoginNeeded) -> None:
        first = self.phase is Phase.STARTING
        self._step(Step.NEEDS_LOGIN)
        if first:
            self._emit(self.transcript.put(self._login_entry(event.methods, "needed")))
            self._notice(f"The agent {self.agent.name!r} needs a login first: {event.detail}")
        else:
            self._notice(f"The agent still cannot start a session: {event.detail}")

    def _login_entry(self, methods: tuple[Any, ...], state: str) -> dict[str, Any]:
        if state == "done":
            return {**self.transcript.entries["login"], "state": "done"}
        items = []
        for method in methods:
            kind = getattr(method, "type", None) or "agent"
            item: dict[str, Any] = {"id": method.id, "name": method.name, "description": method.description,
                                    "kind": kind}  # fmt: skip
            if kind == "terminal":
                item["command"] = " ".join([*self.agent.argv, *(getattr(method, "args", None) or [])])
            if kind == "env_var":
                item["vars"] = [v.name for v in getattr(method, "vars", [])]
            items.append(item)
        preset = self.agent.preset
        if not items and preset is not None and preset.login:
            items.append({"id": "local", "name": "Log in on the machine", "description": None, "kind": "terminal",
                          "command": preset.login})  # fmt: skip
        return {"id": "login", "type": "login", "state": state, "methods": items}

    def _agent_exited(self, event: ev.AgentExited) -> None:
        if self.phase in LIVE and self.can_load and self.restarts < MAX_RESTARTS:
            self.restarts += 1
            self._settle_all()
            self._step(Step.AGENT_LOST)
            self._notice(f"The agent exited (code {event.code}); restarting it and reattaching to its session.")
            self._out.append(fx.Reattach())
            return
        self._notice(f"The agent exited (code {event.code}).")
        self._close(ev.Close(f"agent exited with code {event.code}"))

    def _reattached(self, event: ev.Reattached) -> None:
        self._step(Step.REATTACHED)
        self._notice("The agent is back, with its session.")
        self._police()
        self._next_prompt()

    def _reattach_failed(self, event: ev.ReattachFailed) -> None:
        self._notice(f"Reattaching failed: {event.detail}")
        self._close(ev.Close("the agent could not be restarted"))

    def _close(self, event: ev.Close) -> None:
        self._settle_all()
        self._step(Step.CLOSED)
        self._emit([Ended(reason=event.reason)])
        self._out.append(fx.EndSession(event.reason))

    # -- updates from the agent --------------------------------------------------------

    def _update(self, event: ev.AgentUpdate) -> None:
        if self.phase is Phase.RESTARTING:
            return  # session/load replays history the transcript already has
        update = event.update
        if isinstance(update, schema.CurrentModeUpdate):
            self.controls.current_mode = update.current_mode_id
            self._controls_changed()
            self._police(by_agent=True)
        elif isinstance(update, schema.ConfigOptionUpdate):
            self.controls.load(None, update.config_options)
            self._controls_changed()
            self._police(by_agent=True)
        else:
            self._emit(self.transcript.apply(update))

    def _controls_changed(self) -> None:
        self._emit(self.transcript.put(self.controls.entry()))

    def _police(self, by_agent: bool = False) -> None:
        """Rule 4: under Remote Control the agent runs in a mode where it asks."""
        offending = self.controls.self_approving_now()
        if not self.controls.remote or offending is None or self.enforcing:
            return
        option_id, value = offending
        target = self.controls.asking_choice(option_id)
        what = f"mode {value!r}" if option_id is None else f"{option_id} = {value!r}"
        if by_agent:
            self._notice(f"The agent switched itself to {what}, which approves tools by itself.")
        if target is None:
            self._end_remote(f"the agent is in {what}, which approves tools by itself, and offers no choice that asks")
            return
        self._notice(f"Switching the agent to {target!r}, where it asks before acting.")
        self.enforcing = True
        if option_id is None:
            self._out.append(fx.ChangeMode(target, enforcing=True))
        else:
            self._out.append(fx.ChangeOption(option_id, target, enforcing=True))

    def _end_remote(self, reason: str) -> None:
        self.controls.remote = False
        self._notice(f"Remote Control is off: {reason}.")
        if self.controls.modes or self.controls.options:
            self._controls_changed()
        # Prompts the phone sent while the rule could not be kept are not run unasked.
        kept = [(text, by) for text, by in self.prompts if by == "terminal"]
        if len(kept) < len(self.prompts):
            self._notice(f"{len(self.prompts) - len(kept)} prompt(s) from the phone were dropped.")
        self.prompts = deque(kept)
        self._out.append(fx.EndRemote(reason))

    def _mode_changed(self, event: ev.ModeChanged) -> None:
        self.controls.current_mode = event.mode_id
        self.enforcing = False
        self._controls_changed()
        self._police()
        self._next_prompt()

    def _options_changed(self, event: ev.OptionsChanged) -> None:
        self.controls.load(None, event.options)
        self.enforcing = False
        self._controls_changed()
        self._police()
        self._next_prompt()

    def _call_failed(self, event: ev.CallFailed) -> None:
        if event.enforcing:
            # A policy action that fails must never leave the agent self-approving unseen.
            self.enforcing = False
            self._end_remote(f"the agent could not be moved to a mode that asks ({event.detail})")
            return
        self._notice(f"The agent refused the {event.what} change: {event.detail}")

    def _remote_changed(self, event: ev.RemoteChanged) -> None:
        self.controls.remote = event.on
        if self.controls.modes or self.controls.options:
            self._controls_changed()
        if event.on and self.phase is not Phase.STARTING:
            self._police()

    # -- prompts and turns -------------------------------------------------------------

    def _prompt(self, text: str, by: str) -> None:
        text = text.strip()
        if not text:
            return
        self.prompts.append((text, by))
        if self.phase is Phase.LOGIN_NEEDED:
            self._notice("The prompt waits until the agent is logged in.")
        self._next_prompt()

    def _next_prompt(self) -> None:
        if self.phase is not Phase.READY or self.enforcing or not self.prompts:
            return
        text, by = self.prompts.popleft()
        self._emit(self.transcript.message("user", text, by=by))
        self._step(Step.TURN_STARTED)
        self._emit([Turn(running=True)])
        self._out.append(fx.StartTurn(text))

    def _turn_ended(self, event: ev.TurnEnded) -> None:
        if event.error:
            self._notice(event.error)
        self._settle_all()
        self.grants = [g for g in self.grants if g.always]  # a turn's grants end with it
        self._step(Step.TURN_ENDED)
        self._emit([Turn(running=False, stop_reason=event.stop_reason)])
        self._next_prompt()

    def _cancel(self) -> None:
        # ACP: the client answers every pending permission request with "cancelled".
        self._settle_all()
        if self.phase is Phase.TURN_RUNNING:
            self._out.append(fx.CancelTurn())

    # -- approvals ---------------------------------------------------------------------

    def _permission(self, event: ev.PermissionAsked) -> None:
        tool_call = event.tool_call
        shown = self.transcript.tool_call(tool_call)
        self._emit([shown])
        entry = shown.entry
        options, withheld = policy.offered(
            list(event.options),
            self.controls.remote,
            self.agent.preset.always_enters_mode if self.agent.preset else None,
            self.controls.is_self_approving,
        )
        if withheld and not self._withheld_noticed:
            self._withheld_noticed = True
            self._notice(f"'Always allow' is not offered under Remote Control: {self.agent.name} would switch itself "
                         f"to {self.agent.preset.always_enters_mode!r} and approve later edits by itself.")  # fmt: skip
        paths = policy.tool_call_paths(tool_call)
        outside = policy.outside_paths(paths, lambda path: self.resolve(path) is not None)
        resolved = tuple(r for r in (self.resolve(p) for p in paths) if r is not None)
        approval = self.approvals.open(
            tool_call_id=tool_entry_id(tool_call.tool_call_id),
            title=policy.flag_outside(tool_call.title or entry.get("title", "tool call"), outside),
            kind=tool_call.kind or entry.get("kind", "other"),
            options=options,
            deadline=policy.deadline(self._now, self.approval_timeout),
            request=event.request,
            paths=resolved,
        )
        self._opened_approval(approval)

    def _write(self, event: ev.WriteAsked) -> None:
        index = policy.covering(self.grants, event.path)
        if index is not None:
            self._use_grant(index)
            self._out.append(fx.Permit(event.request, True))
            return
        self._host_approval(event.request, policy.write_title(event.shown), "edit", (event.path,))

    def _command(self, event: ev.CommandAsked) -> None:
        index = policy.covering(self.grants, None) if not event.env else None  # added variables always ask
        if index is not None:
            self._use_grant(index)
            self._out.append(fx.Permit(event.request, True))
            return
        title = policy.command_title(list(event.argv), event.cwd, dict(event.env))
        self._host_approval(event.request, title, "execute", ())

    def _use_grant(self, index: int) -> None:
        if self.grants[index].used_up():
            del self.grants[index]

    def _host_approval(self, request: int, title: str, kind: str, paths: tuple[str, ...]) -> None:
        """A side effect no granted approval covers: the host asks on its own (rule 4)."""
        approval = self.approvals.open(
            tool_call_id=None,
            title=title,
            kind=kind,
            options=list(policy.HOST_OPTIONS),
            deadline=policy.deadline(self._now, self.approval_timeout),
            request=request,
            source="host",
            paths=paths,
        )
        self._opened_approval(approval)

    def _opened_approval(self, approval: Approval) -> None:
        self._emit(self.transcript.put(approval.to_entry()))
        flagged = policy.auto_allow(approval.options, self.controls.remote, self.skip_permissions)
        if flagged is not None:
            self._decide(approval.id, flagged.option_id, by="flag")

    def _decide(self, approval_id: str, option_id: str, by: str) -> None:
        self._settle(self.approvals.decide(approval_id, option_id, by))

    def _settle(self, approval: Approval | None) -> None:
        """Show the outcome of an approval and answer the request that waits for it."""
        if approval is None:
            return
        self._emit(self.transcript.put(approval.to_entry()))
        granted = approval.granted()
        if approval.source == "host":
            reason = "" if granted else f"the person did not allow it ({approval.state})"
            self._out.append(fx.Permit(approval.request, granted is not None, reason))
            return
        if granted is not None:
            self.grants.append(policy.Grant(frozenset(approval.paths), approval.kind, granted == "allow_always"))
        self._out.append(fx.Answer(approval.request, approval.outcome))

    def _settle_all(self) -> None:
        for approval in self.approvals.pending():
            self._settle(self.approvals.cancel(approval.id))

    def _tick(self, event: ev.Tick) -> None:
        expired = self.approvals.expire_due(self._now)
        for approval in expired:
            self._settle(approval)
        if expired:
            self._notice("An approval timed out and was denied.")

    # -- screens -----------------------------------------------------------------------

    def _from_screen(self, event: ev.FromScreen) -> None:
        message, by = event.message, event.by
        if isinstance(message, Hello):
            self._emit([self.snapshot()], to=by)
        elif isinstance(message, Prompt):
            self._prompt(message.text, by)
        elif isinstance(message, Decide):
            self._decide(message.approval_id, message.option_id, by)
        elif isinstance(message, Cancel):
            self._cancel()
        elif isinstance(message, SetMode):
            self._set_mode(message.mode_id)
        elif isinstance(message, SetOption):
            self._set_option(message.option_id, message.value)
        elif isinstance(message, Authenticate):
            self._login(message.method_id)
        # Other kinds are host-to-viewer kinds: a screen sending one is ignored.

    def _set_mode(self, mode_id: str) -> None:
        if self.controls.remote and self.controls.is_self_approving(mode_id):
            self._notice(f"Mode {mode_id!r} approves tools by itself; it is not allowed while Remote Control is on.")
        elif self.phase not in LIVE:
            self._notice("The agent cannot change modes right now.")
        elif mode_id not in {m.id for m in self.controls.modes}:
            self._notice(f"The agent has no mode {mode_id!r}.")
        else:
            self._out.append(fx.ChangeMode(mode_id))

    def _set_option(self, option_id: str, value: str | bool) -> None:
        if self.controls.remote and self.controls.refuses_option(option_id, value):
            self._notice(f"{option_id} = {value!r} approves tools by itself; not allowed while Remote Control is on.")
        elif self.phase not in LIVE or self.controls.option(option_id) is None:
            self._notice(f"The agent has no option {option_id!r} to change now.")
        else:
            self._out.append(fx.ChangeOption(option_id, value))

    def _login(self, method_id: str) -> None:
        if self.phase is not Phase.LOGIN_NEEDED:
            self._notice("The agent is already logged in." if self.phase in LIVE else "The agent is not ready yet.")
            return
        self._out.append(fx.Login(method_id or None))

    def _terminal_started(self, event: ev.TerminalStarted) -> None:
        self.transcript.terminal_started(event.terminal_id, event.command)

    def _terminal_output(self, event: ev.TerminalOutput) -> None:
        self._emit(self.transcript.terminal_output(event.terminal_id, event.text))

    def _terminal_exited(self, event: ev.TerminalExited) -> None:
        self._emit(self.transcript.terminal_exited(event.terminal_id, event.exit_code))


HANDLERS: dict[type, Callable[[SessionCore, Any], None]] = {
    ev.SessionOpened: SessionCore._opened,
    ev.LoginNeeded: SessionCore._login_needed,
    ev.AgentUpdate: SessionCore._update,
    ev.PermissionAsked: SessionCore._permission,
    ev.WriteAsked: SessionCore._write,
    ev.CommandAsked: SessionCore._command,
    ev.TerminalStarted: SessionCore._terminal_started,
    ev.TerminalOutput: SessionCore._terminal_output,
    ev.TerminalExited: SessionCore._terminal_exited,
    ev.FromScreen: SessionCore._from_screen,
    ev.TurnEnded: SessionCore._turn_ended,
    ev.ModeChanged: SessionCore._mode_changed,
    ev.OptionsChanged: SessionCore._options_changed,
    ev.CallFailed: SessionCore._call_failed,
    ev.AgentExited: SessionCore._agent_exited,
    ev.Reattached: SessionCore._reattached,
    ev.ReattachFailed: SessionCore._reattach_failed,
    ev.RemoteChanged: SessionCore._remote_changed,
    ev.ViewerBehind: lambda core, event: core._emit([core.snapshot()], to=event.by),
    ev.Notice: lambda core, event: core._notice(event.text),
    ev.Tick: SessionCore._tick,
    ev.Close: SessionCore._close,
}
