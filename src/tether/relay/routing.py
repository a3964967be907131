"""The relay's routing decisions, without I/O (docs/protocol.md section 1).

Rule: a session is named by its host. One host and at most one viewer may hold a
session at a time; a viewer may only join a session whose host is attached; the session
dies with its host. Which end a connection is comes from the URL it connected to, never
from what it sends. A second viewer is refused unless it asks to take over: then the
viewer in place is closed ``replaced`` and the newcomer takes its seat (the host, told the
old one left for that reason, decides whether to admit it: host/pairing.py). The host may
have its viewer dropped (a device it refused must not hold the seat). A host that ends
the session on purpose (it closes 1000 or 4000, after its sealed ``ended``) closes the
viewer 4000; a host connection that is lost (no close frame, a timeout, a network error,
evicted, the relay stopping) closes the viewer 4503 ``host away``: the host may come back
to the same session id within its outage window (docs/protocol.md, "Reconnection") and the
viewer keeps trying. Either way the relay keeps nothing of the session.

Every transition of a session lives in ``TRANSITIONS`` below, as h11 keeps its
connection states in one table. A broker reads the session's state (which ends are
attached), asks :func:`join` or :func:`leave` what happens, and carries out the
returned effects in order; it decides nothing by itself.

Every refusal and every dropped frame has a named reason and is counted (DERP's
``dropReason``): the relay answers bad input with a close code or an error message, never
with a crash.

Nothing here imports asyncio, starlette or websockets: these are plain values and
functions, tested without sockets.
"""

from __future__ import annotations

import enum
import json
import re
from collections import Counter
from dataclasses import dataclass

SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def valid_session_id(session_id: str) -> bool:
    """Whether ``session_id`` is well formed: 16-64 characters of the base64url alphabet."""
    # fullmatch, not match with "$": "$" would accept a trailing newline.
    return SESSION_ID.fullmatch(session_id) is not None


class Role(enum.StrEnum):
    """Which end of a session a connection holds (from its URL path)."""

    HOST = "host"
    VIEWER = "viewer"

    @property
    def peer(self) -> Role:
        """The other end."""
        return Role.VIEWER if self is Role.HOST else Role.HOST


class CloseCode(enum.IntEnum):
    """WebSocket close codes the relay sends; ``reason`` is the close reason text."""

    GOING_AWAY = 1001
    FRAME_TOO_LARGE = 1009
    INTERNAL_ERROR = 1011
    SESSION_ENDED = 4000
    BAD_SESSION_ID = 4400
    UNKNOWN_SESSION = 4404
    TOO_SLOW = 4408
    SESSION_BUSY = 4409
    REPLACED = 4410
    REFUSED_BY_HOST = 4403
    UNAUTHORIZED = 4401
    TOO_MANY_SESSIONS = 4429
    HOST_AWAY = 4503

    @property
    def reason(self) -> str:
        """The close reason sent with the code."""
        return _CLOSE_REASONS[self]


_CLOSE_REASONS = {
    CloseCode.GOING_AWAY: "relay shutting down",
    CloseCode.FRAME_TOO_LARGE: "frame too large",
    CloseCode.INTERNAL_ERROR: "relay error",
    CloseCode.SESSION_ENDED: "session ended",
    CloseCode.BAD_SESSION_ID: "bad session id",
    CloseCode.UNKNOWN_SESSION: "unknown session",
    CloseCode.TOO_SLOW: "too slow",
    CloseCode.SESSION_BUSY: "session busy",
    CloseCode.REPLACED: "replaced",
    CloseCode.REFUSED_BY_HOST: "refused by the host",
    CloseCode.UNAUTHORIZED: "unauthorized",
    CloseCode.TOO_MANY_SESSIONS: "too many sessions",
    CloseCode.HOST_AWAY: "host away",
}


class Drop(enum.StrEnum):
    """Why the relay refused a connection or dropped a frame (the keys of /metrics ``drops``)."""

    BAD_SESSION_ID = "bad_session_id"  # refused: the path's session id is malformed
    UNKNOWN_SESSION = "unknown_session"  # refused: a viewer for a session no host holds
    SESSION_BUSY = "session_busy"  # refused: that role of the session is taken
    UNAUTHORIZED = "unauthorized"  # refused: no valid credential for that end (4401)
    MALFORMED = "malformed"  # a text frame (version 1 has no endpoint-to-relay messages) or invalid UTF-8
    OVERSIZED = "oversized"  # a frame above the maximum frame size; the connection is closed 1009
    NO_PEER = "no_peer"  # a frame for an end that is not connected: nobody to give it to
    TOO_SLOW = "too_slow"  # a connection that did not drain its queue in time, closed 4408
    INTERNAL = "internal"  # a bug in the relay, caught at the endpoint and closed 1011
    TOO_MANY_SESSIONS = "too_many_sessions"  # refused: the client address holds its share of sessions (4429)
    OVER_CAPACITY = "over_capacity"  # a TCP connection over the relay's limit, answered 503 and closed
    IDLE = "idle"  # a connection that sent no request head within the handshake timeout, closed
    BAD_REQUEST = "bad_request"  # an HTTP request that does not parse, answered 400 and closed
    BAD_ORIGIN = "bad_origin"  # refused: a browser page of another origin (relay/origin.py), answered 403


REFUSALS = {
    CloseCode.BAD_SESSION_ID: Drop.BAD_SESSION_ID,
    CloseCode.UNKNOWN_SESSION: Drop.UNKNOWN_SESSION,
    CloseCode.SESSION_BUSY: Drop.SESSION_BUSY,
    CloseCode.UNAUTHORIZED: Drop.UNAUTHORIZED,
    CloseCode.TOO_MANY_SESSIONS: Drop.TOO_MANY_SESSIONS,
}
"""The drop reason counted for each close code that refuses a connection."""


class SessionState(enum.Enum):
    """Which ends of a session are attached."""

    ABSENT = "absent"  # no host: the session does not exist (nothing of it is kept)
    HOSTED = "hosted"  # the host alone
    PAIRED = "paired"  # the host and its one viewer

    @classmethod
    def of(cls, present: frozenset[Role] | set[Role]) -> SessionState:
        """The state of a session whose attached ends are ``present``."""
        if Role.HOST not in present:
            # A viewer without a host cannot exist: the host's leave removes the viewer.
            return cls.ABSENT
        return cls.PAIRED if Role.VIEWER in present else cls.HOSTED


class Event(enum.Enum):
    """What a connection does to its end of a session."""

    JOIN = "join"
    TAKE_OVER = "take_over"  # a viewer joins asking to replace the viewer in place
    RETURN = "return"  # a host comes back with its own credential; its old connection may still hang on
    LEAVE = "leave"  # closed on purpose by the end (close code 1000 or 4000)
    LOST = "lost"  # gone without a deliberate end: no close frame, a timeout, evicted, the relay stopping
    DROP = "drop"  # the host asks the relay to close its viewer (a device it refused)


class PeerState(enum.StrEnum):
    """The ``state`` of a ``peer`` control message."""

    JOINED = "joined"
    LEFT = "left"


@dataclass(frozen=True, slots=True)
class Notify:
    """Effect: send ``to`` the control message ``{"type":"peer","role":about,"state":state}``
    (with ``"reason"`` when given: ``replaced`` for a viewer that a take-over closed)."""

    to: Role
    about: Role
    state: PeerState
    reason: str | None = None

    def message(self) -> str:
        """The control message as the text frame to send."""
        return peer_message(self.about, self.state, self.reason)


@dataclass(frozen=True, slots=True)
class Close:
    """Effect: close the end ``role`` with ``code`` after what is already queued for it."""

    role: Role
    code: CloseCode


@dataclass(frozen=True, slots=True)
class Dismiss:
    """Effect: close the connection that held ``role`` before this event with ``code`` and take it
    out of the session at once (its own later leave changes nothing); ``discard`` drops what was
    queued for it so that the close goes first. A take-over's dismissal comes before the newcomer
    is attached."""

    role: Role
    code: CloseCode
    discard: bool = False


Effect = Notify | Close | Dismiss


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an event does: the session's next state, a refusal, effects to carry out in order."""

    next: SessionState
    effects: tuple[Effect, ...] = ()
    refusal: CloseCode | None = None

    @property
    def refused(self) -> bool:
        """Whether the event was refused (only joins are refused)."""
        return self.refusal is not None


_S, _H, _V = SessionState, Role.HOST, Role.VIEWER

TRANSITIONS: dict[tuple[SessionState, Role, Event], Outcome] = {
    # A host creates the session by joining it; a second host is refused.
    (_S.ABSENT, _H, Event.JOIN): Outcome(_S.HOSTED),
    (_S.HOSTED, _H, Event.JOIN): Outcome(_S.HOSTED, refusal=CloseCode.SESSION_BUSY),
    (_S.PAIRED, _H, Event.JOIN): Outcome(_S.PAIRED, refusal=CloseCode.SESSION_BUSY),
    # A viewer needs a host, and one controlling viewer per session (DESIGN.md rule 3).
    (_S.ABSENT, _V, Event.JOIN): Outcome(_S.ABSENT, refusal=CloseCode.UNKNOWN_SESSION),
    (_S.PAIRED, _V, Event.JOIN): Outcome(_S.PAIRED, refusal=CloseCode.SESSION_BUSY),
    # Both ends learn of each other before any frame of the viewer is forwarded: the host
    # resets its sequence numbers on this `joined` (docs/protocol.md section 2), so it must
    # be queued ahead of the viewer's first frame.
    (_S.HOSTED, _V, Event.JOIN): Outcome(
        _S.PAIRED,
        (Notify(_H, _V, PeerState.JOINED), Notify(_V, _H, PeerState.JOINED)),
    ),
    # Taking over (DESIGN.md rule 3): the viewer in place is closed `replaced` (what waits for it
    # is dropped), the host hears it left for that reason, then the newcomer joins as any viewer.
    # Whether the newcomer sees anything is the host's decision, confirmed at its terminal.
    (_S.ABSENT, _V, Event.TAKE_OVER): Outcome(_S.ABSENT, refusal=CloseCode.UNKNOWN_SESSION),
    (_S.HOSTED, _V, Event.TAKE_OVER): Outcome(
        _S.PAIRED,
        (Notify(_H, _V, PeerState.JOINED), Notify(_V, _H, PeerState.JOINED)),
    ),
    (_S.PAIRED, _V, Event.TAKE_OVER): Outcome(
        _S.PAIRED,
        (
            Dismiss(_V, CloseCode.REPLACED, discard=True),
            Notify(_H, _V, PeerState.LEFT, "replaced"),
            Notify(_H, _V, PeerState.JOINED),
            Notify(_V, _H, PeerState.JOINED),
        ),
    ),
    # The host drops a viewer it refused: closed after what the host sent it (its reason), and
    # the seat is free at once. Its `left` tells the host the drop happened.
    (_S.PAIRED, _H, Event.DROP): Outcome(
        _S.HOSTED, (Dismiss(_V, CloseCode.REFUSED_BY_HOST), Notify(_H, _V, PeerState.LEFT))
    ),
    # A host coming back (its routing token, or a fresh proof naming the session: admission.py)
    # while the relay still holds its old connection (not yet noticed dead: a network switch):
    # the old one is dismissed, and its viewer told the host is away, so it comes back to the new one.
    (_S.ABSENT, _H, Event.RETURN): Outcome(_S.HOSTED),
    (_S.HOSTED, _H, Event.RETURN): Outcome(_S.HOSTED, (Dismiss(_H, CloseCode.REPLACED, discard=True),)),
    (_S.PAIRED, _H, Event.RETURN): Outcome(
        _S.HOSTED, (Dismiss(_V, CloseCode.HOST_AWAY), Dismiss(_H, CloseCode.REPLACED, discard=True))
    ),
    # The session dies with its host (DESIGN.md rule 8): its viewer is closed at once.
    (_S.HOSTED, _H, Event.LEAVE): Outcome(_S.ABSENT),
    (_S.PAIRED, _H, Event.LEAVE): Outcome(_S.ABSENT, (Close(_V, CloseCode.SESSION_ENDED),)),
    # A host lost without ending: nothing is kept either, but the viewer is told the host is
    # away (4503), not that the session ended, so it keeps trying (DESIGN.md rule 7).
    (_S.HOSTED, _H, Event.LOST): Outcome(_S.ABSENT),
    (_S.PAIRED, _H, Event.LOST): Outcome(_S.ABSENT, (Close(_V, CloseCode.HOST_AWAY),)),
    # A viewer that leaves (or is lost) frees the seat; the host keeps the session.
    (_S.PAIRED, _V, Event.LEAVE): Outcome(_S.HOSTED, (Notify(_H, _V, PeerState.LEFT),)),
    (_S.PAIRED, _V, Event.LOST): Outcome(_S.HOSTED, (Notify(_H, _V, PeerState.LEFT),)),
}
"""Every transition there is. A pair missing here (the leave of an end that is not
attached) changes nothing: a connection already evicted may still report its own leave."""


def join(session_id: str, role: Role, state: SessionState, take_over: bool = False, returning: bool = False) -> Outcome:
    """What happens when a connection asks for end ``role`` of ``session_id`` in ``state``.

    The session id is checked first, so a malformed id is refused whatever the state.
    ``take_over``: a viewer asks to replace the viewer in place (a host cannot).
    ``returning``: a host comes back with its own credential (Event.RETURN; a viewer cannot).
    """
    if not valid_session_id(session_id):
        return Outcome(state, refusal=CloseCode.BAD_SESSION_ID)
    event = Event.TAKE_OVER if take_over and role is Role.VIEWER else Event.JOIN
    if returning and role is Role.HOST:
        event = Event.RETURN
    return TRANSITIONS[state, role, event]


def leave(role: Role, state: SessionState, clean: bool = True) -> Outcome:
    """What happens when the end ``role`` of a session in ``state`` goes away.

    ``clean``: the end closed on purpose (``Event.LEAVE``); else it was lost (``Event.LOST``).
    """
    return TRANSITIONS.get((state, role, Event.LEAVE if clean else Event.LOST), Outcome(state))


def deliberate(close_code: int | None) -> bool:
    """Whether an end that closed with ``close_code`` ended on purpose (1000, or 4000 from a host)."""
    return close_code in (1000, CloseCode.SESSION_ENDED)


def drop(role: Role, state: SessionState) -> Outcome:
    """What happens when the end ``role`` asks the relay to drop its peer (only a host may)."""
    return TRANSITIONS.get((state, role, Event.DROP), Outcome(state))


def is_drop_request(text: object) -> bool:
    """Whether a text frame is the host's ``{"type":"drop","role":"viewer"}``."""
    if not isinstance(text, str) or len(text) > 256:
        return False
    try:
        return bool(json.loads(text) == {"type": "drop", "role": "viewer"})
    except ValueError:
        return False


def destination(sender: Role, state: SessionState) -> Role | Drop:
    """Where a frame from ``sender`` goes: the other end if attached, else the drop reason."""
    return sender.peer if state is SessionState.PAIRED else Drop.NO_PEER


def peer_message(about: Role, state: PeerState, reason: str | None = None) -> str:
    """The ``peer`` control message: ``about`` joined or left the session (and why, if said)."""
    message = {"type": "peer", "role": str(about), "state": str(state)}
    if reason is not None:
        message["reason"] = reason
    return json.dumps(message)


def error_message(reason: Drop, detail: str) -> str:
    """The ``error`` control message answering a refused frame; the connection stays open."""
    return json.dumps({"type": "error", "reason": str(reason), "detail": detail})


class Counters:
    """Refusals and drops by reason, for /metrics.

    One object per relay, shared by its broker and endpoints. Counting never fails and
    never blocks; ``snapshot`` always lists every reason, zero included, so a monitor
    sees a stable shape.
    """

    def __init__(self) -> None:
        self._drops: Counter[Drop] = Counter()

    def count(self, reason: Drop, n: int = 1) -> None:
        """Add ``n`` drops for ``reason``."""
        self._drops[reason] += n

    def __getitem__(self, reason: Drop) -> int:
        return self._drops[reason]

    def snapshot(self) -> dict[str, int]:
        """Every reason and its count so far, as /metrics shows them."""
        return {str(reason): self._drops[reason] for reason in Drop}
