"""The agent's modes and options in the session core: rule 4 under Remote Control.

With Remote Control on, the agent runs in a mode where it asks. One rule covers both
doors an agent may use to switch (a mode update, a mode-category config option); a
switch back that fails ends Remote Control on every screen rather than go on unseen.

Also here:

- **Start asking** (issue 11): every agent is moved to its asking mode when its session
  opens, locally too; the person may switch later (``/mode``).
- **The banner**: while a self-approving mode or ``--dangerously-skip-permissions`` is in
  force, every screen keeps a warning (the ``banner`` entry, and ``banner`` in ``controls``).
- **The generic guard** (issue 14): under Remote Control, a tool call of kind edit, delete
  or move, or execute outside a confinement tether knows, that reaches ``completed`` with no
  permission request and no host approval while it was open, is shown on every screen as
  having acted without asking, and Remote Control ends.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any

from acp import schema

from tether.host.core import effects as fx
from tether.host.core import events as ev
from tether.host.core.phases import Phase
from tether.host.core.state import CoreState
from tether.host.core.transcript import tool_entry_id

LIVE = (Phase.READY, Phase.TURN_RUNNING)
GUARDED_KINDS = frozenset({"edit", "delete", "move", "execute"})  # tool kinds that change something
TOOL_UPDATES = (schema.ToolCallStart, schema.ToolCallProgress, schema.ToolCallUpdate)
MODE_TEXT = re.compile(r"\[MODE_UPDATE\]\s*([\w-]+)")


class Modes(CoreState):
    """The modes part of SessionCore."""

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
        self._switch(option_id, target)

    def _switch(self, option_id: str | None, target: str) -> None:
        """Move the agent's mode (``None``) or mode-like option to ``target``; prompts wait until it is done."""
        self.enforcing = True
        if option_id is None:
            self._out.append(fx.ChangeMode(target, enforcing=True))
        else:
            self._out.append(fx.ChangeOption(option_id, target, enforcing=True))

    def _start_asking(self) -> None:
        """When the session first opens: a self-approving start mode is left for the asking one, locally too."""
        if self.controls.started:
            return
        self.controls.started = True
        self._show_banner()
        chosen = self.controls.chosen_mode
        if chosen is not None and chosen in {m.id for m in self.controls.modes} and not self.enforcing:
            if chosen != self.controls.current_mode and not (self.controls.remote and self.controls.is_self_approving(
                    chosen)):  # fmt: skip
                self._notice(f"Starting the agent in {chosen!r} (agent.mode).")
                self._switch(None, chosen)
            return  # the person's choice, with the banner if it approves by itself
        offending = self.controls.self_approving_now()
        if self.controls.remote or offending is None or self.enforcing:
            return  # under Remote Control, _police moves it
        option_id, value = offending
        target = self.controls.asking_choice(option_id)
        if target is None:
            return  # nowhere to go: the banner stays
        self._notice(f"The agent started in {value!r}, which approves tools by itself; switching it to {target!r}, "
                     "where it asks first (/mode to choose another).")  # fmt: skip
        self._switch(option_id, target)

    def _controls_changed(self) -> None:
        super()._controls_changed()
        self._show_banner()

    def _show_banner(self) -> None:
        """Keep the ``banner`` entry in step with what approves by itself now (module doc)."""
        self.controls.skip_permissions = self.skip_permissions and not self.controls.remote
        self.controls.sandbox_approves = self.permission_policy is not None and self.permission_policy.confined
        banner = self.controls.banner()
        shown = self.transcript.entries.get("banner")
        if banner is None and (shown is None or not shown.get("on")):
            return
        if shown is not None and shown.get("on") == (banner is not None) and shown.get("text") == f"⚠ {banner}":
            return
        text = f"⚠ {banner}" if banner else "Nothing approves by itself any more: the agent asks before acting."
        self._emit(self.transcript.put({"id": "banner", "type": "message", "role": "system", "text": text,
                                        "on": banner is not None}))  # fmt: skip

    def _guard(self, update: Any) -> None:
        """The generic guard (module doc) for one tool call update already in the transcript."""
        if isinstance(update, schema.AgentMessageChunk):
            self._mode_in_text(update)
        if not isinstance(update, TOOL_UPDATES):
            return
        entry_id = tool_entry_id(update.tool_call_id)
        entry = self.transcript.entries.get(entry_id)
        if entry is None:
            return
        approvals = list(self.approvals._approvals.values())
        seen, covered = self.transcript.first_seen.setdefault(entry_id, (len(approvals), self.transcript.covered))
        if entry.get("status") != "completed" or entry.get("unasked") or not self.controls.remote:
            return
        kind = entry.get("kind")
        if kind not in GUARDED_KINDS or (kind == "execute" and self.controls.confined()):
            return
        asked = (
            any(a.tool_call_id == entry_id for a in approvals)
            or any(a.source == "host" and a.granted() for a in approvals[seen:])
            or self.transcript.covered > covered  # an approval of this turn covered its write or command
        )
        if asked:
            return
        self._emit(self.transcript.flag_unasked(entry_id))
        self._notice(f"The agent acted without asking: {entry.get('title')!r} ({kind}) completed with no permission "
                     "request. Restart Remote Control in a mode that asks.")  # fmt: skip
        self._end_remote(f"the agent {self.agent.name!r} acted without asking ({kind}: {entry.get('title')})")

    def _mode_in_text(self, update: schema.AgentMessageChunk) -> None:
        """A mode switch the agent tells only as text ("[MODE_UPDATE] autoEdit", Gemini CLI) counts as one."""
        text = getattr(update.content, "text", None)
        told = MODE_TEXT.search(text) if isinstance(text, str) and self.agent.preset is not None and (
            self.agent.preset.mode_in_text) else None  # fmt: skip
        if told is None or told[1] not in {m.id for m in self.controls.modes} or told[1] == self.controls.current_mode:
            return
        self.controls.current_mode = told[1]
        self._controls_changed()
        self._police(by_agent=True)

    def _end_remote(self, reason: str) -> None:
        self.controls.remote = False
        self._notice(f"Remote Control is off: {reason}.")
        if self.controls.modes or self.controls.options:
            self._controls_changed()
        # Prompts the phone sent while the rule could not be kept are not run unasked.
        kept = [prompt for prompt in self.prompts if prompt[1] == "terminal"]
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
            if not self.controls.remote:
                self._notice(f"The agent could not be moved to a mode that asks ({event.detail}).")
                self._show_banner()
                self._next_prompt()
                return
            self._end_remote(f"the agent could not be moved to a mode that asks ({event.detail})")
            return
        self._notice(f"The agent refused the {event.what} change: {event.detail}")

    def _remote_changed(self, event: ev.RemoteChanged) -> None:
        self.controls.remote = event.on
        if self.controls.modes or self.controls.options:
            self._controls_changed()
        if event.on and self.phase is not Phase.STARTING:
            self._police()

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
