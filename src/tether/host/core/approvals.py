"""Approval lifecycle: pure state, no I/O, no clock of its own.

Rule: an approval starts ``pending`` and leaves it exactly once. Every transition is in
TRANSITIONS below; anything else (a second answer, an answer to an expired approval, an
option the agent did not offer) is refused by returning None, never by raising, because
a late or duplicate answer is an ordinary event when two screens race.

::

    pending --decide--> decided      an option chosen at the terminal or on the device
    pending --cancel--> cancelled    the turn was stopped or the session ended
    pending --expire--> expired      nobody answered in time: resolves as a rejection

What an approval shows (title, kind, options) is frozen when it opens: a later update
from the agent cannot rewrite it. Approval ids (``approval-N``) live in a namespace of
their own, apart from the agent's tool-call ids (see transcript.py). The deadline comes
from the injected clock of the session core and is checked on its ticks (``expire_due``).
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass, replace
from typing import Any


class State(enum.StrEnum):
    PENDING = "pending"
    DECIDED = "decided"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class Event(enum.StrEnum):
    DECIDE = "decide"
    CANCEL = "cancel"
    EXPIRE = "expire"


TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.PENDING, Event.DECIDE): State.DECIDED,
    (State.PENDING, Event.CANCEL): State.CANCELLED,
    (State.PENDING, Event.EXPIRE): State.EXPIRED,
}

ALLOW_KINDS = ("allow_once", "allow_always")
REJECT_KINDS = ("reject_once", "reject_always")


@dataclass(frozen=True, slots=True)
class Option:
    """One permission option as the agent offered it (ACP PermissionOption)."""

    option_id: str
    name: str
    kind: str
    scope: str | None = None  # tether's own scoped "always allow" (host/grants.py): what it covers, as shown

    def to_entry(self) -> dict[str, Any]:
        entry = {"option_id": self.option_id, "name": self.name, "kind": self.kind}
        return entry if self.scope is None else {**entry, "scope": self.scope}


@dataclass(frozen=True, slots=True)
class Approval:
    """One permission request and where it stands.

    ``request`` is the number of the agent request it answers. ``source`` is ``agent``
    for the agent's own ``session/request_permission``, ``host`` for an approval the host
    opened itself because a write or command arrived that no granted approval covers.
    """

    id: str
    tool_call_id: str | None
    title: str
    kind: str
    options: tuple[Option, ...]
    deadline: float
    request: int = 0
    source: str = "agent"
    paths: tuple[str, ...] = ()
    timeout: float | None = None  # seconds it waits in all (shown as a countdown), if known
    tier: str | None = None  # the policy's tier (host/permissions.py): "risky" asks for a stronger confirmation
    cooldown: float | None = None  # a risky one: seconds it must be shown before a device may approve it
    opened: float = 0.0  # when it opened, by the core's clock
    state: State = State.PENDING
    outcome: str | None = None
    decided_by: str | None = None

    def option(self, option_id: str) -> Option | None:
        """The offered option with that id, or None."""
        return next((o for o in self.options if o.option_id == option_id), None)

    def option_of_kind(self, *kinds: str) -> Option | None:
        """The first offered option whose ACP kind is one of ``kinds`` (in that order)."""
        for kind in kinds:
            for option in self.options:
                if option.kind == kind:
                    return option
        return None

    def granted(self) -> str | None:
        """``allow_once`` or ``allow_always`` if a person (or the local flag) allowed it, else None."""
        option = self.option(self.outcome) if self.state is State.DECIDED and self.outcome else None
        return option.kind if option is not None and option.kind in ALLOW_KINDS else None

    def to_entry(self) -> dict[str, Any]:
        """The transcript entry of docs/protocol.md section 3."""
        return {
            "id": self.id,
            "type": "approval",
            "tool_call_id": self.tool_call_id,
            "title": self.title,
            "kind": self.kind,
            "source": self.source,
            "options": [o.to_entry() for o in self.options],
            "state": str(self.state),
            "outcome": self.outcome,
            "decided_by": self.decided_by,
            **({} if self.timeout is None else {"timeout": self.timeout}),
            **({} if self.tier is None else {"tier": self.tier}),
            **({} if self.cooldown is None else {"cooldown": self.cooldown}),
        }


class ApprovalBook:
    """All approvals of one session, keyed by id."""

    def __init__(self) -> None:
        self._approvals: dict[str, Approval] = {}
        self._ids = itertools.count(1)

    def open(
        self,
        tool_call_id: str | None,
        title: str,
        kind: str,
        options: list[Option],
        deadline: float,
        request: int = 0,
        source: str = "agent",
        paths: tuple[str, ...] = (),
        timeout: float | None = None,
        tier: str | None = None,
        cooldown: float | None = None,
        opened: float = 0.0,
    ) -> Approval:
        """Record a new pending approval."""
        approval = Approval(
            id=f"approval-{next(self._ids)}",
            tool_call_id=tool_call_id,
            title=title,
            kind=kind,
            options=tuple(options),
            deadline=deadline,
            request=request,
            source=source,
            paths=paths,
            timeout=timeout,
            tier=tier,
            cooldown=cooldown,
            opened=opened,
        )
        self._approvals[approval.id] = approval
        return approval

    def get(self, approval_id: str) -> Approval | None:
        return self._approvals.get(approval_id)

    def pending(self) -> list[Approval]:
        """Pending approvals, oldest first."""
        return [a for a in self._approvals.values() if a.state is State.PENDING]

    def _move(self, approval_id: str, event: Event, **changes: Any) -> Approval | None:
        approval = self._approvals.get(approval_id)
        if approval is None:
            return None
        state = TRANSITIONS.get((approval.state, event))
        if state is None:
            return None
        approval = replace(approval, state=state, **changes)
        self._approvals[approval_id] = approval
        return approval

    def decide(self, approval_id: str, option_id: str, by: str) -> Approval | None:
        """Choose an option; None if not pending or the option was not offered."""
        approval = self._approvals.get(approval_id)
        if approval is None or approval.option(option_id) is None:
            return None
        return self._move(approval_id, Event.DECIDE, outcome=option_id, decided_by=by)

    def cancel(self, approval_id: str) -> Approval | None:
        """The turn stopped; None if it was no longer pending."""
        return self._move(approval_id, Event.CANCEL)

    def expire(self, approval_id: str) -> Approval | None:
        """Nobody answered in time: the outcome is a rejection option if one was offered."""
        approval = self._approvals.get(approval_id)
        if approval is None:
            return None
        reject = approval.option_of_kind(*REJECT_KINDS)
        return self._move(approval_id, Event.EXPIRE, outcome=reject.option_id if reject else None)

    def expire_due(self, now: float) -> list[Approval]:
        """Expire every pending approval whose deadline has passed (``now`` from the core's clock)."""
        due = [a.id for a in self.pending() if a.deadline <= now]
        return [a for a in (self.expire(i) for i in due) if a is not None]

    def next_deadline(self) -> float | None:
        """The earliest deadline of a pending approval, or None."""
        return min((a.deadline for a in self.pending()), default=None)
