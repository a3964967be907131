"""Effects: what the session core asks the shell to do (the core's output).

The shell carries them out in order. Agent calls (StartTurn, ChangeMode, ...) run as
tasks whose results come back as events; nothing here waits.
"""

from __future__ import annotations

from dataclasses import dataclass

from tether.protocol.attachments import Attachment
from tether.protocol.messages import Message


@dataclass(frozen=True, slots=True)
class Show:
    """Send ``message`` to every screen, or only to the screen named ``to``."""

    message: Message
    to: str | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """Answer the agent's permission request: the chosen option, or None for cancelled."""

    request: int
    option_id: str | None


@dataclass(frozen=True, slots=True)
class Permit:
    """Let the agent's write or command go ahead, or refuse it with ``reason``."""

    request: int
    allowed: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class StartTurn:
    text: str
    attachments: tuple[Attachment, ...] = ()  # passed to the agent as content blocks (protocol/attachments.py)


@dataclass(frozen=True, slots=True)
class CancelTurn:
    pass


@dataclass(frozen=True, slots=True)
class ChangeMode:
    mode_id: str
    enforcing: bool = False


@dataclass(frozen=True, slots=True)
class ChangeOption:
    option_id: str
    value: str | bool
    enforcing: bool = False


@dataclass(frozen=True, slots=True)
class Login:
    """ACP authenticate with ``method_id`` then session/new; None: only retry session/new."""

    method_id: str | None


@dataclass(frozen=True, slots=True)
class Reattach:
    """Start a new agent process and session/load the session."""


@dataclass(frozen=True, slots=True)
class WakeAt:
    """Send a Tick at ``at`` (the core's clock), replacing any earlier wake; None: no wake needed."""

    at: float | None


@dataclass(frozen=True, slots=True)
class EndRemote:
    """Remote Control must end now (a rule could not be kept); ``reason`` is shown."""

    reason: str


@dataclass(frozen=True, slots=True)
class EndSession:
    """Stop the agent and its commands; the session is over."""

    reason: str


@dataclass(frozen=True, slots=True)
class Audit:
    """Append this record of a decision to the audit log (host/paired.py AuditLog)."""

    record: dict[str, object]


Effect = (
    Show | Answer | Permit | StartTurn | CancelTurn | ChangeMode | ChangeOption | Login | Reattach | WakeAt
    | EndRemote | EndSession | Audit
)  # fmt: skip
