"""The session's lifecycle phases and every transition between them, in one table.

Rule: a session starts its agent, may wait for a login, then alternates between ready and
a running turn; an agent that dies and can reload its session is restarted in between;
``ended`` is final. Anything not in TRANSITIONS leaves the phase as it is (a late event
is an ordinary thing when an agent, two screens and a timer race), so :func:`advance`
returns the phase unchanged rather than raising.

::

    starting ---opened---> ready <---turn_ended--- turn_running
        |                  |  ^ \\---turn_started---------^   |
        needs_login        |  reattached                     |
        v                  |  |                              |
    login_needed -opened-->/  restarting <---agent_lost------/ (and from ready)
    (any) ---closed---> ended
    ready, turn_running ---needs_login---> login_needed (a prompt answered "authentication required")
"""

from __future__ import annotations

import enum


class Phase(enum.StrEnum):
    STARTING = "starting"  # the agent process is starting; ACP initialize + session/new
    LOGIN_NEEDED = "login_needed"  # session/new said the agent needs a login first
    READY = "ready"  # an ACP session is open and no turn runs: a prompt may start one
    TURN_RUNNING = "turn_running"  # session/prompt is in flight
    RESTARTING = "restarting"  # the agent died; a new process reattaches with session/load
    ENDED = "ended"  # final: nothing more happens


class Step(enum.StrEnum):
    OPENED = "opened"  # session/new (or session/load) succeeded
    NEEDS_LOGIN = "needs_login"  # session/new answered auth-required
    TURN_STARTED = "turn_started"
    TURN_ENDED = "turn_ended"
    AGENT_LOST = "agent_lost"  # the agent exited and will be restarted
    REATTACHED = "reattached"
    CLOSED = "closed"


TRANSITIONS: dict[tuple[Phase, Step], Phase] = {
    (Phase.STARTING, Step.OPENED): Phase.READY,
    (Phase.STARTING, Step.NEEDS_LOGIN): Phase.LOGIN_NEEDED,
    (Phase.LOGIN_NEEDED, Step.OPENED): Phase.READY,
    (Phase.LOGIN_NEEDED, Step.NEEDS_LOGIN): Phase.LOGIN_NEEDED,
    # An agent that opened its session may still answer a prompt "authentication required".
    (Phase.READY, Step.NEEDS_LOGIN): Phase.LOGIN_NEEDED,
    (Phase.TURN_RUNNING, Step.NEEDS_LOGIN): Phase.LOGIN_NEEDED,
    (Phase.READY, Step.TURN_STARTED): Phase.TURN_RUNNING,
    (Phase.TURN_RUNNING, Step.TURN_ENDED): Phase.READY,
    (Phase.READY, Step.AGENT_LOST): Phase.RESTARTING,
    (Phase.TURN_RUNNING, Step.AGENT_LOST): Phase.RESTARTING,
    # The prompt call of a turn fails after (or before) the agent is found dead.
    (Phase.RESTARTING, Step.TURN_ENDED): Phase.RESTARTING,
    (Phase.RESTARTING, Step.REATTACHED): Phase.READY,
    **{(phase, Step.CLOSED): Phase.ENDED for phase in Phase if phase is not Phase.ENDED},
}


def advance(phase: Phase, step: Step) -> Phase:
    """The phase after ``step``; the same phase when the table has no such transition."""
    return TRANSITIONS.get((phase, step), phase)


def allowed(phase: Phase, step: Step) -> bool:
    """Whether ``step`` is a transition out of ``phase``."""
    return (phase, step) in TRANSITIONS
