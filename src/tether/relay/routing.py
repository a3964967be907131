"""The relay's routing decisions, without I/O.

Rule: a session is named by its host. One host and at most one viewer may be attached to
a session at a time; a viewer may only join a session whose host is attached. Which end
a connection is comes from the URL it connected to, never from what it sends.

Every refusal and every dropped frame has a named reason and is counted (DERP's
``dropReason``): the relay answers bad input with a close code, never with a crash.
"""

from __future__ import annotations

import enum
import json
import re
from collections import Counter

SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class Role(enum.StrEnum):
    HOST = "host"
    VIEWER = "viewer"

    @property
    def peer(self) -> Role:
        return Role.VIEWER if self is Role.HOST else Role.HOST


class CloseCode(enum.IntEnum):
    """WebSocket close codes the relay sends (docs/protocol.md section 1)."""

    GOING_AWAY = 1001
    FRAME_TOO_LARGE = 1009
    SESSION_ENDED = 4000
    BAD_SESSION_ID = 4400
    UNKNOWN_SESSION = 4404
    TOO_SLOW = 4408
    SESSION_BUSY = 4409

    @property
    def reason(self) -> str:
        return CLOSE_REASONS[self]


CLOSE_REASONS = {
    CloseCode.GOING_AWAY: "relay shutting down",
    CloseCode.FRAME_TOO_LARGE: "frame too large",
    CloseCode.SESSION_ENDED: "session ended",
    CloseCode.BAD_SESSION_ID: "bad session id",
    CloseCode.UNKNOWN_SESSION: "unknown session",
    CloseCode.TOO_SLOW: "too slow",
    CloseCode.SESSION_BUSY: "session busy",
}


class Drop(enum.StrEnum):
    """Why the relay refused a connection or dropped a frame."""

    BAD_SESSION_ID = "bad_session_id"
    UNKNOWN_SESSION = "unknown_session"
    SESSION_BUSY = "session_busy"
    MALFORMED = "malformed"  # a text frame: version 1 has no endpoint-to-relay messages
    OVERSIZED = "oversized"
    NO_PEER = "no_peer"  # a frame for an end that is not connected
    TOO_SLOW = "too_slow"


REFUSAL_DROPS = {
    CloseCode.BAD_SESSION_ID: Drop.BAD_SESSION_ID,
    CloseCode.UNKNOWN_SESSION: Drop.UNKNOWN_SESSION,
    CloseCode.SESSION_BUSY: Drop.SESSION_BUSY,
}


def admit(session_id: str, role: Role, present: frozenset[Role]) -> CloseCode | None:
    """None if ``role`` may join a session whose attached ends are ``present``; else why not."""
    if not SESSION_ID.match(session_id):
        return CloseCode.BAD_SESSION_ID
    if role in present:
        return CloseCode.SESSION_BUSY
    if role is Role.VIEWER and Role.HOST not in present:
        return CloseCode.UNKNOWN_SESSION
    return None


def peer_event(role: Role, state: str) -> str:
    """The control message (a text frame) telling the other end that ``role`` joined or left."""
    return json.dumps({"type": "peer", "role": str(role), "state": state})


def error_event(reason: Drop, detail: str) -> str:
    """The control message answering a refused frame."""
    return json.dumps({"type": "error", "reason": str(reason), "detail": detail})


class Counters:
    """Drops and refusals by reason, for /healthz."""

    def __init__(self) -> None:
        self.drops: Counter[str] = Counter()

    def count(self, reason: Drop) -> None:
        self.drops[str(reason)] += 1

    def snapshot(self) -> dict[str, int]:
        return dict(self.drops)
