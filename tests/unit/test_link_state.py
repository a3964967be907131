"""The host's relay link across outages, with time injected: the 10-minute window runs in microseconds."""

from __future__ import annotations

import pytest

from tether.host import link_state
from tether.host.link_state import (
    CAP,
    TRANSITIONS,
    Back,
    Dial,
    End,
    Failed,
    LinkState,
    Lost,
    NetworkBack,
    Phase,
    Say,
    Tick,
)

T0 = 1000.0


def away(window: float = 600.0) -> LinkState:
    state = LinkState(window)
    state.handle(Lost(T0, "no close frame"))
    return state


def test_a_lost_link_says_so_with_the_time_left_and_dials_at_once() -> None:
    """The first attempt goes out at once; the terminal hears the window."""
    state = LinkState(600.0)
    expected = [Say("relay link lost; reconnecting (10:00 left of the 10:00 window)"), Dial(0.0)]
    assert expected == state.handle(Lost(T0))
    assert Phase.AWAY == state.phase


def test_back_just_under_the_window_resumes_and_says_how_long() -> None:
    """9:59.9 away: the session goes on."""
    state = away()
    assert [Say("relay link back after 9:59")] == state.handle(Back(T0 + 599.9))
    assert Phase.LIVE == state.phase


def test_back_just_over_the_window_ends() -> None:
    """10:00.1 away: too late, even if the relay answers now (a laptop woke after the window)."""
    state = away()
    [end] = state.handle(Back(T0 + 600.1))
    assert isinstance(end, End) and "10:00 outage window" in end.reason and "no close frame" in end.reason
    assert Phase.ENDED == state.phase
    assert [] == state.handle(Back(T0 + 601))  # over is over


def test_the_window_ends_by_the_clock_while_attempts_fail() -> None:
    """Ticks and failures end the session once past the window, not before."""
    state = away(60.0)
    assert [] == state.handle(Tick(T0 + 59.9))
    assert [Dial(link_state.backoff(1, 0.5))] == state.handle(Failed(T0 + 59.95, 0.5))
    assert isinstance(state.handle(Tick(T0 + 60.1))[0], End)


def test_a_failure_past_the_window_ends() -> None:
    """The attempt that fails after the window is the last."""
    state = away(60.0)
    assert isinstance(state.handle(Failed(T0 + 61, 0.0))[0], End)


def test_back_soon_after_a_short_outage() -> None:
    """A blip reads in tenths of a second."""
    state = away()
    assert [Say("relay link back after 3.2 s")] == state.handle(Back(T0 + 3.2))


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    """Waits grow from 0.1 s to the cap; jitter keeps each between half and all of it."""
    state = away()
    waits = []
    for n in range(12):
        [dial] = state.handle(Failed(T0 + n, 0.999))
        assert isinstance(dial, Dial)
        waits.append(round(dial.delay, 2))
    assert [0.1, 0.2, 0.4, 0.8, 1.0, 1.0] == waits[:6] and {1.0} == set(waits[4:])
    assert CAP / 2 == link_state.backoff(20, 0.0)


def test_network_back_dials_at_once_and_restarts_the_backoff() -> None:
    """A sign that the network works again is not waited on."""
    state = away()
    for n in range(8):
        state.handle(Failed(T0 + n, 0.0))
    assert [Dial(0.0)] == state.handle(NetworkBack(T0 + 9))
    assert [Dial(link_state.backoff(1, 0.0))] == state.handle(Failed(T0 + 9.1, 0.0))


def test_the_terminal_hears_every_minute_while_away() -> None:
    """One line a minute, with the time left."""
    state = away()
    assert [] == state.handle(Tick(T0 + 30))
    assert [Say("relay link still away; reconnecting (9:00 left of the 10:00 window)")] == state.handle(Tick(T0 + 60))
    assert [] == state.handle(Tick(T0 + 61))


def test_events_without_a_rule_change_nothing() -> None:
    """A second Lost while away does not restart the window; nothing happens while live but a loss."""
    state = away()
    assert [] == state.handle(Lost(T0 + 300))
    assert T0 == state.since
    live = LinkState()
    for event in (Back(T0), Failed(T0, 0.5), Tick(T0), NetworkBack(T0)):
        assert [] == live.handle(event)
    assert Phase.LIVE == live.phase


def test_every_rule_is_in_the_table() -> None:
    """The transitions are one table: away handles every event but Lost, live only Lost, ended nothing."""
    assert {(Phase.LIVE, Lost)} | {(Phase.AWAY, e) for e in (Failed, Back, Tick, NetworkBack)} == set(TRANSITIONS)


@pytest.mark.parametrize(("seconds", "shown"), [(0, "0:00"), (59.9, "0:59"), (600, "10:00"), (3725, "1:02:05")])
def test_clock(seconds: float, shown: str) -> None:
    """Times read as m:ss (h:mm:ss past an hour)."""
    assert shown == link_state.clock(seconds)


def test_a_window_must_be_positive() -> None:
    """A zero window is a programming error, refused at once."""
    with pytest.raises(ValueError, match="positive"):
        LinkState(0)
