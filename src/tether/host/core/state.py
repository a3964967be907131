"""The state every part of the session core shares, and the helpers they all use.

SessionCore (session.py) is this state plus its parts: approvals (approving.py) and the
agent's modes under Remote Control (modes.py). See session.py for the calling contract.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tether.host import grants
from tether.host.core import effects as fx
from tether.host.core import events as ev
from tether.host.core import policy
from tether.host.core.approvals import ApprovalBook
from tether.host.core.controls import Controls
from tether.host.core.journal import Journal, RecentIds
from tether.host.core.phases import Phase, Step, advance
from tether.host.core.transcript import Transcript
from tether.host.permissions import Policy
from tether.protocol.attachments import Attachment
from tether.protocol.messages import Message, Snapshot, Turn

OUTAGE_WINDOW = 600  # seconds, the default of remote.outage_window; the shell sets the configured one in info
Resolve = Callable[[str], str | None]  # a path -> its resolved absolute form, None if outside


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """What the core knows of the agent: its name, command line and preset facts."""

    name: str
    argv: tuple[str, ...]
    preset: Any = None  # tether.agents.presets.Preset


class CoreState:
    """The fields of one session and the helpers that emit effects."""

    permission_policy: Policy | None = None  # the user's rules (host/permissions.py), set by the shell

    def __init__(
        self,
        root: str,
        agent: AgentInfo,
        resolve: Resolve,
        approval_timeout: float,
        skip_permissions: bool = False,
        run: str = "run",
    ) -> None:
        self.root = root
        self.agent = agent
        self.resolve = resolve
        self.approval_timeout = approval_timeout
        self.skip_permissions = skip_permissions
        self.phase = Phase.STARTING
        self.transcript = Transcript()
        # Numbered transcript changes of this host run (``run``: the shell's random id), for replay (journal.py).
        self.journal = Journal(run)
        self.prompt_ids = RecentIds()  # ids of prompts taken from screens: each runs once
        self.approvals = ApprovalBook()
        self.controls = Controls(agent.preset)
        self.grants: list[policy.Grant] = []
        # "Always allow" of this session (host/grants.py), by number; the scopes each pending approval offers.
        self.allowed: dict[int, grants.Grant] = {}
        self._grant_numbers = 1
        self._offered_scopes: dict[str, dict[str, grants.Scope]] = {}
        self._last_risky: float | None = None  # when a person last approved a risky request (policy.too_soon)
        self.prompts: deque[tuple[str, str, tuple[Attachment, ...]]] = deque()  # (text, by, attachments)
        self.accepts: frozenset[str] = frozenset()  # what the agent takes with a prompt (SessionOpened)
        # outage_window: the seconds a viewer counts down while the host is away (remote.outage_window).
        self.info: dict[str, Any] = {"title": root.rsplit("/", 1)[-1], "agent": agent.name, "cwd": root,
                                     "protocol": 2, "outage_window": OUTAGE_WINDOW}  # fmt: skip
        self.can_load = False
        self.restarts = 0
        self.enforcing = False  # a switch back to an asking mode is in flight
        # Screens that are devices (host/pairing.py): their decisions must carry the device's signature.
        self.devices: dict[str, ev.DeviceAdmitted] = {}
        self.refused_decisions = 0  # device decisions refused for a bad, expired or reused signature
        self._withheld_noticed = False
        self._wake: float | None = None
        self._out: list[fx.Effect] = []
        self._now = 0.0

    # -- small helpers -----------------------------------------------------------------

    def _emit(self, messages: list[Message], to: str | None = None) -> None:
        self._out.extend(fx.Show(self.journal.record(message), to) for message in messages)

    def _notice(self, text: str) -> None:
        self._emit(self.transcript.message("system", text))

    def _step(self, step: Step) -> None:
        self.phase = advance(self.phase, step)

    def _rewake(self) -> None:
        wake = self.approvals.next_deadline() if self.phase is not Phase.ENDED else None
        if wake != self._wake:
            self._wake = wake
            self._out.append(fx.WakeAt(wake))

    def snapshot(self, reset: str | None = None) -> Snapshot:
        """The whole (bounded) transcript for a screen that joins; ``reset``: why instead of a replay."""
        entries = self.transcript.snapshot()
        return Snapshot(session=dict(self.info), entries=entries, running=self.phase is Phase.TURN_RUNNING,
                        at=self.journal.head, run=self.journal.run, received=self.prompt_ids.newest(),
                        reset=reset, remaining=self._remaining())  # fmt: skip

    def _remaining(self) -> dict[str, float] | None:
        """Seconds each pending approval still waits, now: sent with a snapshot or replay, never in an entry
        (what a device signs, and what the journal keeps, must not change with the time it is sent)."""
        left = {a.id: round(max(0.0, a.deadline - self._now), 3) for a in self.approvals.pending()}
        return left or None

    def _controls_changed(self) -> None:
        self._emit(self.transcript.put(self.controls.entry()))

    def _next_prompt(self) -> None:
        if self.phase is not Phase.READY or self.enforcing or not self.prompts:
            return
        text, by, attachments = self.prompts.popleft()
        device = self.devices.get(by)
        label = f"{device.name} ({device.device_id})" if device is not None else None
        shown = [a.shown() for a in attachments]
        self._emit(self.transcript.message("user", text, by=by, device=label, attachments=shown))
        self._step(Step.TURN_STARTED)
        self._emit([Turn(running=True)])
        self._out.append(fx.StartTurn(text, attachments))
