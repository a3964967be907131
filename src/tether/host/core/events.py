"""Events: everything that can happen to a session, as plain values (the core's input).

The asyncio shell turns what it sees (an agent update, an agent request, a frame from the
viewer, a line at the terminal, a finished agent call, a timer) into one of these and
hands it to ``SessionCore.handle``. ``request`` numbers are the shell's, so it can match
an Answer or Permit effect to the agent request that waits for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tether.host.core.approvals import Option
from tether.protocol.messages import Message


@dataclass(frozen=True, slots=True)
class SessionOpened:
    """session/new or session/load succeeded; its modes and config options."""

    modes: Any = None
    options: Any = None
    can_load: bool = False
    accepts: frozenset[str] = frozenset()  # what may go with a prompt: "image", "file" (protocol/attachments.py)


@dataclass(frozen=True, slots=True)
class LoginNeeded:
    """session/new answered auth-required; ``methods`` are the agent's ACP auth methods."""

    methods: tuple[Any, ...]
    detail: str


@dataclass(frozen=True, slots=True)
class AgentUpdate:
    """One ACP ``session/update`` payload."""

    update: Any


@dataclass(frozen=True, slots=True)
class PermissionAsked:
    """``session/request_permission``: the agent asks before a tool call."""

    request: int
    tool_call: Any  # acp.schema.ToolCallUpdate
    options: tuple[Option, ...]


@dataclass(frozen=True, slots=True)
class WriteAsked:
    """``fs/write_text_file`` for ``path`` (resolved, inside the project; ``shown`` as the agent named it)."""

    request: int
    path: str
    shown: str


@dataclass(frozen=True, slots=True)
class CommandAsked:
    """``terminal/create``: the full argv, the working folder and the variables the agent added."""

    request: int
    argv: tuple[str, ...]
    cwd: str
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class TerminalStarted:
    terminal_id: str
    command: str


@dataclass(frozen=True, slots=True)
class TerminalOutput:
    """New output of a command since the previous event for it."""

    terminal_id: str
    text: str


@dataclass(frozen=True, slots=True)
class TerminalExited:
    terminal_id: str
    exit_code: int


TERMINAL = "terminal"  # the local terminal's screen name; every other screen is a remote device


@dataclass(frozen=True, slots=True)
class FromScreen:
    """A message from a screen: ``by`` is ``terminal`` or the viewer device's name."""

    by: str
    message: Message
    at: float = 0.0  # the host's wall clock when it arrived (a device's signed decision expires by it)


@dataclass(frozen=True, slots=True)
class DeviceAdmitted:
    """The screen ``by`` is a device that proved its key (host/pairing.py): its decisions must be signed by it."""

    by: str
    session_id: str  # the session's id at the relay, part of every signed decision
    device_id: str
    name: str
    public_key: bytes


@dataclass(frozen=True, slots=True)
class DeviceGone:
    """The device on screen ``by`` left, was replaced or was revoked."""

    by: str


@dataclass(frozen=True, slots=True)
class TurnEnded:
    """session/prompt returned (``stop_reason``) or failed (``error`` says how)."""

    stop_reason: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ModeChanged:
    """session/set_mode succeeded."""

    mode_id: str


@dataclass(frozen=True, slots=True)
class OptionsChanged:
    """session/set_config_option succeeded; the agent's config options now."""

    options: Any


@dataclass(frozen=True, slots=True)
class CallFailed:
    """An agent call failed: ``what`` is mode, option or login; ``enforcing`` if policy asked for it."""

    what: str
    detail: str
    enforcing: bool = False


@dataclass(frozen=True, slots=True)
class AgentExited:
    code: int


@dataclass(frozen=True, slots=True)
class Reattached:
    """A restarted agent loaded the session again."""


@dataclass(frozen=True, slots=True)
class ReattachFailed:
    detail: str


@dataclass(frozen=True, slots=True)
class RemoteChanged:
    """Remote Control was turned on or off."""

    on: bool


@dataclass(frozen=True, slots=True)
class ViewerBehind:
    """The viewer could not keep up and lost messages: it needs a fresh snapshot."""

    by: str


@dataclass(frozen=True, slots=True)
class Notice:
    """Something the shell must tell every screen (a failed task, a lost link)."""

    text: str


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed: approvals whose deadline is due expire."""


@dataclass(frozen=True, slots=True)
class Close:
    """End the session (terminal closed, signal, /quit, agent gone)."""

    reason: str


Event = (
    SessionOpened | LoginNeeded | AgentUpdate | PermissionAsked | WriteAsked | CommandAsked | TerminalStarted
    | TerminalOutput | TerminalExited | FromScreen | TurnEnded | ModeChanged | OptionsChanged | CallFailed
    | AgentExited | Reattached | ReattachFailed | RemoteChanged | ViewerBehind | Notice | Tick | Close
    | DeviceAdmitted | DeviceGone
)  # fmt: skip
