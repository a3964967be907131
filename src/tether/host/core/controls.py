"""What the user can switch in the agent: session modes and session config options.

Pure: it holds the agent's advertised modes and options and decides which choices
approve tool calls by themselves (DESIGN.md rule 4: with Remote Control on, each agent
runs in a mode where it asks; a self-approving choice is refused). For a preset the agent's
own list is used; for any other agent, every mode id any preset knows as self-approving.
"""

from __future__ import annotations

from typing import Any

from acp import schema

from tether.agents.presets import PRESETS, Preset

KNOWN_SELF_APPROVING = frozenset().union(*(p.self_approving_modes for p in PRESETS.values()))
# ACP config option categories that carry a mode (Claude exposes its modes this way too).
MODE_CATEGORIES = ("mode", "permission", "permissions", "approval")

JSON = dict[str, Any]


class Controls:
    """Modes and config options of one agent session."""

    def __init__(self, preset: Preset | None) -> None:
        self.preset = preset
        self.self_approving = preset.self_approving_modes if preset else KNOWN_SELF_APPROVING
        self.current_mode: str | None = None
        self.modes: list[schema.SessionMode] = []
        self.options: list[Any] = []
        self.commands: list[JSON] = []  # the agent's slash commands (ACP available_commands_update)
        self.remote = False
        self.skip_permissions = False  # --dangerously-skip-permissions is in force (a local session)
        self.started = False  # the session opened once (the start-asking rule ran)
        self.chosen_mode: str | None = None  # the mode the person chose to start in (config agent.mode)
        self.sandboxed = False  # the agent runs under tether's own --sandbox: its commands are confined
        self.sandbox_approves = False  # --sandbox with sandbox.auto_approve: what it confines runs unasked

    def load(self, modes: schema.SessionModeState | None, options: list[Any] | None) -> None:
        """Take what session/new (or session/load) returned."""
        if modes is not None:
            self.current_mode = modes.current_mode_id
            self.modes = list(modes.available_modes)
        if options is not None:
            self.options = list(options)
            # One control, two doors: a mode-category option that repeats the session modes
            # (Claude Code, Codex) moves the session mode along with it and is shown once.
            for option in self.options:
                current = getattr(option, "current_value", None)
                if self._repeats_modes(option) and isinstance(current, str):
                    self.current_mode = current

    def _repeats_modes(self, option: Any) -> bool:
        """Whether ``option`` is the session modes again, as a config option of a mode category."""
        ids = {m.id for m in self.modes}
        return bool(ids) and self._mode_like(option) and set(self._choices(option)) == ids

    def load_commands(self, commands: list[schema.AvailableCommand]) -> None:
        """Take the agent's slash commands: name, what it does, and a hint for its input."""
        self.commands = []
        for command in commands:
            given = command.input.root if command.input is not None else None
            hint = given.hint if given is not None else None
            self.commands.append({"name": command.name, "description": command.description, "hint": hint})

    def is_self_approving(self, value: str) -> bool:
        return value in self.self_approving

    def _mode_like(self, option: Any) -> bool:
        category = getattr(option, "category", None) or ""
        return category in MODE_CATEGORIES or option.id in ("mode", "permission_mode", "approval_mode")

    def unconfined_always(self) -> str | None:
        """Why the agent's own "always allow" cannot be offered under Remote Control, or None."""
        if self.preset is None:
            return None
        mode = self.preset.always_enters_mode
        if mode is not None and self.is_self_approving(mode):
            return f"{self.preset.name} would switch itself to {mode!r} and approve later edits by itself"
        return self.preset.always_unconfined

    def confined(self) -> bool:
        """Whether the agent now runs its commands inside a confinement tether knows (--sandbox, or a preset fact)."""
        return self.sandboxed or (self.preset is not None and self.current_mode in self.preset.confined_modes)

    def banner(self) -> str | None:
        """The warning every screen keeps showing while something approves by itself, or None."""
        if self.skip_permissions:
            return "--dangerously-skip-permissions: every request is approved without asking"
        offending = self.self_approving_now()
        if offending is None and self.sandbox_approves:
            return ("sandbox.auto_approve: edits and commands the sandbox confines run without asking "
                    "(network, deletes and writes outside the project still ask)")  # fmt: skip
        if offending is None:
            return None
        option_id, value = offending
        what = f"mode {value!r}" if option_id is None else f"{option_id} = {value!r}"
        return f"The agent is in {what}: it approves its own edits or commands without asking"

    def option(self, option_id: str) -> Any | None:
        return next((o for o in self.options if o.id == option_id), None)

    def refuses_option(self, option_id: str, value: str | bool) -> bool:
        """True if setting this option would let the agent approve its own tool calls."""
        option = self.option(option_id)
        return bool(option is not None and self._mode_like(option) and isinstance(value, str) and (
            self.is_self_approving(value)
        ))  # fmt: skip

    def _choices(self, option: Any) -> list[str]:
        values = []
        for choice in getattr(option, "options", None) or []:
            for item in getattr(choice, "options", None) or [choice]:
                values.append(item.value)
        return values

    def self_approving_now(self) -> tuple[str | None, str] | None:
        """What currently lets the agent approve its own tool calls, or None.

        One rule for both doors (rule 4): the session mode (``(None, mode_id)``), or a
        mode-like config option whose current value is self-approving (``(option_id, value)``);
        an agent may report the same switch either way.
        """
        if self.current_mode is not None and self.is_self_approving(self.current_mode):
            return (None, self.current_mode)
        for option in self.options:
            current = getattr(option, "current_value", None)
            if self._repeats_modes(option):
                continue  # the session mode above is the same control
            if self._mode_like(option) and isinstance(current, str) and self.is_self_approving(current):
                return (option.id, current)
        return None

    def asking_choice(self, option_id: str | None) -> str | None:
        """Where to move a self-approving mode (``None``) or option back to: a value that asks."""
        if option_id is None:
            return self.asking_mode()
        option = self.option(option_id)
        values = self._choices(option) if option is not None else []
        preferred = self.preset.asking_mode if self.preset else None
        if preferred in values:
            return preferred
        return next((v for v in values if not self.is_self_approving(v)), None)

    def asking_mode(self) -> str | None:
        """A mode where the agent asks before acting (the preset's, else the first), or None."""
        preferred = self.preset.asking_mode if self.preset else None
        ids = [m.id for m in self.modes]
        if preferred in ids:
            return preferred
        return next((i for i in ids if not self.is_self_approving(i)), None)

    def entry(self) -> JSON:
        """The ``controls`` transcript entry (docs/protocol.md)."""
        options = []
        for option in self.options:
            if self._repeats_modes(option):
                continue  # shown once, as the mode menu
            choices: list[JSON] = []
            kind = "boolean" if isinstance(option, schema.SessionConfigOptionBoolean) else "select"
            for choice in getattr(option, "options", None) or []:
                # Select options come flat or grouped; groups hold their own list.
                for item in getattr(choice, "options", None) or [choice]:
                    choices.append({"value": item.value, "name": item.name})
            self_approving = [
                c["value"] for c in choices if self._mode_like(option) and self.is_self_approving(c["value"])
            ]
            options.append(
                {
                    "id": option.id,
                    "name": option.name,
                    "type": kind,
                    "current": option.current_value,
                    "choices": choices,
                    "self_approving_values": self_approving,
                }
            )
        return {
            "id": "controls",
            "type": "controls",
            "modes": {
                "current": self.current_mode,
                "available": [
                    {
                        "id": m.id,
                        "name": m.name,
                        "description": m.description,
                        "self_approving": self.is_self_approving(m.id),
                    }
                    for m in self.modes
                ],
            },
            "options": options,
            "commands": self.commands,
            "remote": self.remote,
            "banner": self.banner(),
        }
