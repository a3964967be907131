"""The host's relay link across outages: live, away, ended (DESIGN.md rule 7). Pure.

Rule: a relay connection that drops without the host ending the session is *away*, not
over. The host dials again at once, then with jittered exponential backoff (``BASE`` to
``CAP`` seconds, so the link is back within about a second of the network), and keeps
the session, its paired devices and its transcript meanwhile. Back within the outage
window (``remote.outage_window``, 600 s by default), the session goes on as it was; an
outage longer than the window ends Remote Control: ``tether rc`` exits with status 3,
the interactive ``tether`` goes on locally. The terminal is told when the link is lost
(with the time left of the window), every minute while it stays away, and when it is back.

Every transition is in ``TRANSITIONS``; :meth:`LinkState.handle` takes one event and
returns the effects to carry out, in order (``host/relay_link.py`` pumps them: it says
lines, dials, ends). Time is the ``now`` of each event (seconds of a clock that keeps
counting through a laptop's sleep); randomness is the ``jitter`` a failed attempt carries
(uniform in [0, 1)). Nothing here reads a clock, sleeps or touches a socket.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

OUTAGE_WINDOW = 600.0  # seconds: the default of remote.outage_window
BASE = 0.1  # seconds before the second attempt; each failure doubles it
CAP = 1.0  # the longest wait between attempts (before jitter)
NOTE_EVERY = 60.0  # seconds between "still reconnecting" lines


class Phase(enum.Enum):
    LIVE = "live"  # connected and admitted by the relay
    AWAY = "away"  # the connection was lost; dialling again within the window
    ENDED = "ended"  # away for longer than the window, or closed: Remote Control is over


@dataclass(frozen=True, slots=True)
class Lost:
    """The relay connection ended without the host ending the session (or stalled past the heartbeat)."""

    now: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Failed:
    """An attempt to reconnect failed; ``jitter`` in [0, 1) spreads the next one."""

    now: float
    jitter: float


@dataclass(frozen=True, slots=True)
class Back:
    """An attempt to reconnect succeeded: the relay admitted the session again."""

    now: float


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passes (the pump sends one every second or so while away)."""

    now: float


@dataclass(frozen=True, slots=True)
class NetworkBack:
    """A sign the network works again (woken from sleep, an interface came up): dial now."""

    now: float


Event = Lost | Failed | Back | Tick | NetworkBack


@dataclass(frozen=True, slots=True)
class Say:
    """Effect: a line for the terminal."""

    text: str


@dataclass(frozen=True, slots=True)
class Dial:
    """Effect: try to reconnect after ``delay`` seconds (a newer Dial replaces a pending one)."""

    delay: float


@dataclass(frozen=True, slots=True)
class End:
    """Effect: the outage outlasted the window; Remote Control is over, for ``reason``."""

    reason: str


Effect = Say | Dial | End


def clock(seconds: float) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour)."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def backoff(attempts: int, jitter: float) -> float:
    """The wait before the next attempt after ``attempts`` failures: doubling from BASE up to CAP, half jittered."""
    delay: float = min(CAP, BASE * 2.0 ** max(0, attempts - 1))
    return delay * (0.5 + jitter / 2)


class LinkState:
    """Where the link is (``phase``), since when it is away, how many attempts failed. See the module doc."""

    def __init__(self, window: float = OUTAGE_WINDOW) -> None:
        if window <= 0:
            raise ValueError("the outage window must be positive")
        self.window = window
        self.phase = Phase.LIVE
        self.since = 0.0  # when the link was lost
        self.attempts = 0  # failed attempts since
        self.noted = 0.0  # when the terminal was last told
        self.reason = ""

    def left(self, now: float) -> float:
        """Seconds left of the window while away."""
        return self.window - (now - self.since)

    def handle(self, event: Event) -> list[Effect]:
        """Take ``event``; the effects to carry out, in order. Events with no rule in this phase change nothing."""
        rule = TRANSITIONS.get((self.phase, type(event)))
        return rule(self, event) if rule is not None else []

    def _over(self, now: float) -> bool:
        return now - self.since > self.window

    def _end(self) -> list[Effect]:
        self.phase = Phase.ENDED
        window = clock(self.window)
        return [End(f"the relay link was lost for longer than the {window} outage window ({self.reason})")]

    def _lost(self, event: Event) -> list[Effect]:
        assert isinstance(event, Lost)
        self.phase, self.since, self.attempts, self.noted = Phase.AWAY, event.now, 0, event.now
        self.reason = event.reason or "the relay connection closed"
        left, window = clock(self.left(event.now)), clock(self.window)
        return [Say(f"relay link lost; reconnecting ({left} left of the {window} window)"), Dial(0.0)]

    def _failed(self, event: Event) -> list[Effect]:
        assert isinstance(event, Failed)
        if self._over(event.now):
            return self._end()
        self.attempts += 1
        return [Dial(backoff(self.attempts, event.jitter))]

    def _back(self, event: Event) -> list[Effect]:
        assert isinstance(event, Back)
        if self._over(event.now):
            return self._end()  # just over the window: too late, even though the relay answered
        self.phase = Phase.LIVE
        return [Say(f"relay link back after {_took(event.now - self.since)}")]

    def _tick(self, event: Event) -> list[Effect]:
        assert isinstance(event, Tick)
        if self._over(event.now):
            return self._end()
        if event.now - self.noted < NOTE_EVERY:
            return []
        self.noted = event.now
        return [Say(f"relay link still away; reconnecting ({clock(self.left(event.now))} left of the "
                    f"{clock(self.window)} window)")]  # fmt: skip

    def _network_back(self, event: Event) -> list[Effect]:
        assert isinstance(event, NetworkBack)
        if self._over(event.now):
            return self._end()
        self.attempts = 0
        return [Dial(0.0)]


def _took(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else clock(seconds)


Rule = Callable[[LinkState, Event], list[Effect]]

TRANSITIONS: dict[tuple[Phase, type], Rule] = {
    (Phase.LIVE, Lost): LinkState._lost,
    (Phase.AWAY, Failed): LinkState._failed,
    (Phase.AWAY, Back): LinkState._back,
    (Phase.AWAY, Tick): LinkState._tick,
    (Phase.AWAY, NetworkBack): LinkState._network_back,
}
"""Every transition there is. Anything else changes nothing: a late Lost while away, a Tick
while live, any event once ended (the link is closed or Remote Control is over)."""
