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

The class is put together from parts that share one state (state.py): approvals and
grants (approving.py), modes under Remote Control (modes.py); this file has the door, the
agent's lifecycle, turns and screens, and HANDLERS, the table from event type to handler.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from acp import schema

from tether.host.core import effects as fx
from tether.host.core import events as ev
from tether.host.core.approving import Approving
from tether.host.core.journal import compact
from tether.host.core.modes import LIVE, Modes
from tether.host.core.phases import Phase, Step
from tether.host.core.state import AgentInfo, Resolve
from tether.protocol import attachments as attachments_of
from tether.protocol import signing
from tether.protocol.messages import (
    Authenticate,
    Cancel,
    Decide,
    Ended,
    Hello,
    Prompt,
    Refused,
    Replay,
    Revoke,
    SetMode,
    SetOption,
    Turn,
)

__all__ = ["MAX_RESTARTS", "AgentInfo", "Resolve", "SessionCore"]

MAX_RESTARTS = 3  # an agent that can reload its session is restarted this often at most


class SessionCore(Approving, Modes):
    """See module doc."""

    # -- the one door ------------------------------------------------------------------

    def handle(self, event: ev.Event, now: float) -> list[fx.Effect]:
        """Apply ``event`` at time ``now``; the effects to carry out, in order."""
        self._out = []
        self._now = now
        if self.phase is not Phase.ENDED:
            HANDLERS[type(event)](self, event)
            self._rewake()
        return self._out

    # -- agent lifecycle ---------------------------------------------------------------

    def _opened(self, event: ev.SessionOpened) -> None:
        self.can_load = event.can_load
        self.accepts = event.accepts
        self.info["accepts"] = sorted(event.accepts)  # the viewer offers to attach only what the agent takes
        self.controls.load(event.modes, event.options)
        if "login" in self.transcript.entries:
            self._emit(self.transcript.put(self._login_entry((), "done")))
        self._step(Step.OPENED)
        if self.controls.modes or self.controls.options:
            self._controls_changed()
        self._start_asking()
        self._police()
        self._next_prompt()

    def _login_needed(self, event: ev.LoginNeeded) -> None:
        first = self.phase is not Phase.LOGIN_NEEDED  # at start, or a prompt answered "authentication required"
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
        elif isinstance(update, schema.AvailableCommandsUpdate):
            self.controls.load_commands(update.available_commands)
            self._controls_changed()
        else:
            self._emit(self.transcript.apply(update))
            self._guard(update)

    # -- prompts and turns -------------------------------------------------------------

    def _prompt(self, text: str, by: str, raw_attachments: object = None) -> None:
        text = text.strip()
        attachments = attachments_of.parse(raw_attachments)
        if isinstance(attachments, str) or (refused := attachments_of.refused_kinds(attachments, self.accepts)):
            why = attachments if isinstance(attachments, str) else (
                f"{self.agent.name} does not take {', '.join(refused)} with a prompt")  # fmt: skip
            self._emit(self.transcript.message("system", f"The prompt was not sent: {why}."), to=by)
            return
        if not text and not attachments:
            return
        self.prompts.append((text, by, attachments))
        if self.phase is Phase.LOGIN_NEEDED:
            self._notice("The prompt waits until the agent is logged in.")
        self._next_prompt()

    def _turn_ended(self, event: ev.TurnEnded) -> None:
        if event.error:
            self._notice(event.error)
        self._settle_all()
        self._emit(self.transcript.close_open())  # no card stays pending or running after its turn
        self.grants = [g for g in self.grants if g.always]  # a turn's grants end with it
        self._step(Step.TURN_ENDED)
        self._emit([Turn(running=False, stop_reason=event.stop_reason)])
        self._next_prompt()

    def _cancel(self) -> None:
        # ACP: the client answers every pending permission request with "cancelled".
        self._settle_all()
        if self.phase is Phase.TURN_RUNNING:
            self._out.append(fx.CancelTurn())

    # -- screens -----------------------------------------------------------------------

    def _from_screen(self, event: ev.FromScreen) -> None:
        message, by = event.message, event.by
        if isinstance(message, Hello):
            self._join(message, by)
        elif isinstance(message, Prompt):
            # A prompt the viewer sent again after a reconnection (it cannot know whether it arrived) runs once.
            if message.id is None or self.prompt_ids.add(message.id):
                self._prompt(message.text, by, message.attachments)
        elif isinstance(message, Decide):
            self._screen_decides(message, by, event.at)
        elif isinstance(message, Cancel):
            self._cancel()
        elif isinstance(message, SetMode):
            self._set_mode(message.mode_id)
        elif isinstance(message, SetOption):
            self._set_option(message.option_id, message.value)
        elif isinstance(message, Authenticate):
            self._login(message.method_id)
        elif isinstance(message, Revoke):
            self._revoke(message.number, by)
        # Other kinds are host-to-viewer kinds: a screen sending one is ignored.

    def _join(self, hello: Hello, by: str) -> None:
        """A screen (re)joins: what it missed since ``hello.since`` if the journal has it, else the whole
        transcript (journal.py). Replayed messages keep their numbers; nothing is sent twice."""
        if hello.since is None:
            self._out.append(fx.Show(self.snapshot(), by))
            return
        missed = self.journal.since(hello.since, hello.run)
        if isinstance(missed, str):
            self._out.append(fx.Show(self.snapshot(reset=missed), by))
            return
        replay = Replay(session=dict(self.info), since=hello.since, at=self.journal.head, run=self.journal.run,
                        messages=[m.to_json() for m in compact(missed)], running=self.phase is Phase.TURN_RUNNING,
                        received=self.prompt_ids.newest(), remaining=self._remaining())  # fmt: skip
        self._out.append(fx.Show(replay, by))

    def _screen_decides(self, message: Decide, by: str, at: float) -> None:
        """A decision from a screen: the terminal's as typed; a device's only with its valid signature."""
        if by == ev.TERMINAL:
            self._decide(message.approval_id, message.option_id, by)
            return
        device = self.devices.get(by)
        approval = self.transcript.entries.get(message.approval_id)
        if approval is None or approval.get("type") != "approval" or approval.get("state") != "pending":
            return  # answered already (or never asked): a late or replayed decision changes nothing
        refusal, retry = "no paired device is connected on this screen", None
        if device is not None:
            tool_call = self.transcript.entries.get(approval.get("tool_call_id") or "")
            refusal = signing.check_approval(
                public_key=device.public_key, session_id=device.session_id, approval=approval, tool_call=tool_call,
                option_id=message.option_id, signature=message.signature, expires_ms=message.expires, now=at,
            ) or ""  # fmt: skip
            if not refusal and (soon := self._too_soon(message.approval_id, message.option_id)):
                refusal, retry = soon
        if refusal:
            self.refused_decisions += 1
            self._emit(self.transcript.message("system", f"A decision from {by} was refused: {refusal}."), to=by)
            # The device alone hears which approval, why and when to tap again: its page re-enables the card.
            self._out.append(fx.Show(Refused(approval_id=message.approval_id, reason=refusal,
                                             retry=None if retry is None else round(retry, 3)), by))  # fmt: skip
            return
        self._decide(message.approval_id, message.option_id, f"{device.name} ({device.device_id})" if device else by)

    def _device_admitted(self, event: ev.DeviceAdmitted) -> None:
        self.devices[event.by] = event

    def _device_gone(self, event: ev.DeviceGone) -> None:
        self.devices.pop(event.by, None)

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
    ev.ViewerBehind: lambda core, event: core._out.append(fx.Show(core.snapshot(reset="behind"), event.by)),
    ev.Notice: lambda core, event: core._notice(event.text),
    ev.Tick: SessionCore._tick,
    ev.DeviceAdmitted: SessionCore._device_admitted,
    ev.DeviceGone: SessionCore._device_gone,
    ev.Close: SessionCore._close,
}
