"""The session core: every phase transition and every rule, with a fixed clock and no I/O."""

from __future__ import annotations

from typing import Any

import acp
import pytest
from acp import schema

from tether.agents.presets import PRESETS
from tether.host.core import effects as fx
from tether.host.core import events as ev
from tether.host.core.approvals import Option
from tether.host.core.phases import TRANSITIONS, Phase, Step, advance
from tether.host.core.session import MAX_RESTARTS, AgentInfo, SessionCore
from tether.protocol.messages import Cancel, Decide, Ended, Entry, Hello, Prompt, SetMode, SetOption, Snapshot, Turn
from tether.protocol.signing import DeviceKey

ROOT = "/work/project"
TIMEOUT = 600.0
OPTIONS = (
    Option("allow", "Allow", "allow_once"),
    Option("always", "Always allow", "allow_always"),
    Option("reject", "Reject", "reject_once"),
)
MODES = schema.SessionModeState(
    current_mode_id="ask",
    available_modes=[schema.SessionMode(id="ask", name="Ask"), schema.SessionMode(id="acceptEdits", name="Edits")],
)


def resolve(path: str) -> str | None:
    """Lexical stand-in for the file system: inside ROOT or not."""
    full = path if path.startswith("/") else f"{ROOT}/{path}"
    return full if full == ROOT or full.startswith(ROOT + "/") else None


SESSION = "s" * 22
WALL = 1_800_000_000.0  # the host's wall clock in these tests
DEVICE = DeviceKey("test phone")


class Driver:
    """A core with a fixed clock that collects effects."""

    def __init__(self, preset: str | None = None, skip: bool = False, timeout: float = TIMEOUT) -> None:
        agent = AgentInfo("scripted", ("scripted",), PRESETS[preset] if preset else None)
        self.core = SessionCore(ROOT, agent, resolve, timeout, skip_permissions=skip)
        self.now = 1000.0
        self.effects: list[fx.Effect] = []

    def __call__(self, event: ev.Event) -> list[fx.Effect]:
        out = self.core.handle(event, self.now)
        self.effects += out
        return out

    def ready(self, modes: Any = MODES) -> Driver:
        self(ev.SessionOpened(modes=modes, can_load=True))
        self(ev.DeviceAdmitted("viewer", SESSION, DEVICE.id, DEVICE.name, DEVICE.public_key))
        return self

    def decide(self, approval_id: str, option_id: str, key: DeviceKey | None = None, **change: Any) -> list[fx.Effect]:
        """The viewer's device decides, signing what the core shows for the approval (``change``: tamper)."""
        approval = self.core.transcript.entries[approval_id]
        tool_call = self.core.transcript.entries.get(approval.get("tool_call_id") or "")
        expires = int(WALL * 1000) + 60_000
        signature = (key or DEVICE).sign(SESSION, approval, tool_call, option_id, expires)
        fields: dict[str, Any] = {"signature": signature, "expires": expires, **change}
        return self(ev.FromScreen("viewer", Decide(approval_id=approval_id, option_id=option_id, **fields), WALL))

    def turn(self, text: str = "go", by: str = "terminal") -> Driver:
        self(ev.FromScreen(by, Prompt(text=text)))
        return self

    def ask(self, request: int = 1, paths: tuple[str, ...] = (), kind: str = "edit") -> str:
        locations = [schema.ToolCallLocation(path=p) for p in paths]
        call = schema.ToolCallUpdate(tool_call_id=f"c{request}", title="Write it", kind=kind, locations=locations)
        self(ev.PermissionAsked(request, call, OPTIONS))
        return f"approval-{len(self.core.approvals._approvals)}"


def of(kind: type, effects: list[fx.Effect]) -> list[Any]:
    return [e for e in effects if isinstance(e, kind)]


def shown(effects: list[fx.Effect]) -> list[Any]:
    return [e.message for e in of(fx.Show, effects)]


def notices(effects: list[fx.Effect]) -> list[str]:
    return [m.entry["text"] for m in shown(effects) if isinstance(m, Entry) and m.entry.get("role") == "system"]


# -- the phase table -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "step", "expected"),
    [
        (Phase.STARTING, Step.OPENED, Phase.READY),
        (Phase.STARTING, Step.NEEDS_LOGIN, Phase.LOGIN_NEEDED),
        (Phase.LOGIN_NEEDED, Step.OPENED, Phase.READY),
        (Phase.LOGIN_NEEDED, Step.NEEDS_LOGIN, Phase.LOGIN_NEEDED),
        (Phase.READY, Step.TURN_STARTED, Phase.TURN_RUNNING),
        (Phase.TURN_RUNNING, Step.TURN_ENDED, Phase.READY),
        (Phase.READY, Step.AGENT_LOST, Phase.RESTARTING),
        (Phase.TURN_RUNNING, Step.AGENT_LOST, Phase.RESTARTING),
        (Phase.RESTARTING, Step.TURN_ENDED, Phase.RESTARTING),
        (Phase.RESTARTING, Step.REATTACHED, Phase.READY),
        *[(phase, Step.CLOSED, Phase.ENDED) for phase in Phase if phase is not Phase.ENDED],
    ],
)
def test_phase_table(phase: Phase, step: Step, expected: Phase) -> None:
    """Each transition of the lifecycle table."""
    assert expected == advance(phase, step)


def test_nothing_else_moves_a_phase() -> None:
    """Steps the table does not list leave the phase as it is; ended is final."""
    for phase in Phase:
        for step in Step:
            if (phase, step) not in TRANSITIONS:
                assert phase == advance(phase, step)
    assert all(advance(Phase.ENDED, step) is Phase.ENDED for step in Step)


# -- turns and prompts -----------------------------------------------------------------


def test_prompt_starts_a_turn_and_shows_who_sent_it() -> None:
    """A prompt in ready starts a turn; the user message names the screen it came from."""
    drive = Driver().ready()
    out = drive(ev.FromScreen("viewer", Prompt(text="  hello ")))
    assert [fx.StartTurn("hello")] == of(fx.StartTurn, out)
    assert Phase.TURN_RUNNING == drive.core.phase
    user = next(m for m in shown(out) if isinstance(m, Entry))
    assert ("user", "hello", "viewer") == (user.entry["role"], user.entry["text"], user.entry["by"])


def test_prompts_queue_while_a_turn_runs_and_run_in_order() -> None:
    """A second prompt waits for the turn to end, then starts the next turn."""
    drive = Driver().ready().turn("one").turn("two")
    assert [fx.StartTurn("one")] == of(fx.StartTurn, drive.effects)
    out = drive(ev.TurnEnded("end_turn"))
    assert [fx.StartTurn("two")] == of(fx.StartTurn, out)
    assert Turn(running=False, stop_reason="end_turn") in shown(out)


def test_prompt_waits_for_the_login() -> None:
    """Before a login, a prompt is kept and runs once the session opens."""
    drive = Driver()
    drive(ev.LoginNeeded((), "log in first"))
    out = drive(ev.FromScreen("terminal", Prompt(text="hi")))
    assert [] == of(fx.StartTurn, out) and any("waits until the agent is logged in" in n for n in notices(out))
    assert [fx.StartTurn("hi")] == of(fx.StartTurn, drive.ready().effects)


def test_login_from_a_screen_only_while_needed() -> None:
    """authenticate becomes a Login effect only in login_needed; an empty method retries session/new."""
    drive = Driver()
    drive(ev.LoginNeeded((), "log in"))
    assert [fx.Login(None)] == of(fx.Login, drive(ev.FromScreen("terminal", schema_auth(""))))
    assert [fx.Login("m")] == of(fx.Login, drive(ev.FromScreen("viewer", schema_auth("m"))))
    drive.ready()
    assert [] == of(fx.Login, drive(ev.FromScreen("viewer", schema_auth("m"))))


def schema_auth(method: str) -> Any:
    from tether.protocol.messages import Authenticate

    return Authenticate(method_id=method)


def test_hello_gets_a_snapshot_for_that_screen_only() -> None:
    """A viewer's hello is answered with a snapshot addressed to it."""
    drive = Driver().ready().turn("one")
    out = drive(ev.FromScreen("viewer", Hello()))
    (show,) = of(fx.Show, out)
    assert "viewer" == show.to and isinstance(show.message, Snapshot) and show.message.running


def test_cancel_settles_pending_approvals_and_stops_the_turn() -> None:
    """Stop: every pending approval is answered cancelled (ACP), then session/cancel."""
    drive = Driver().ready().turn()
    drive.ask()
    out = drive(ev.FromScreen("viewer", Cancel()))
    assert [fx.Answer(1, None)] == of(fx.Answer, out)
    assert [fx.CancelTurn()] == of(fx.CancelTurn, out)


def test_close_ends_everything_once() -> None:
    """Close: pending approvals cancelled, ended shown, EndSession; later events do nothing."""
    drive = Driver().ready().turn()
    drive.ask()
    out = drive(ev.Close("bye"))
    assert [fx.Answer(1, None)] == of(fx.Answer, out)
    assert Ended(reason="bye") in shown(out) and [fx.EndSession("bye")] == of(fx.EndSession, out)
    assert [] == drive(ev.FromScreen("terminal", Prompt(text="more")))
    assert Phase.ENDED == drive.core.phase


# -- the agent's life ------------------------------------------------------------------


def test_agent_exit_restarts_a_loadable_agent_a_bounded_number_of_times() -> None:
    """An agent that can session/load is restarted MAX_RESTARTS times, then the session ends."""
    drive = Driver().ready()
    for _ in range(MAX_RESTARTS):
        assert [fx.Reattach()] == of(fx.Reattach, drive(ev.AgentExited(3)))
        assert Phase.RESTARTING == drive.core.phase
        drive(ev.Reattached())
        assert Phase.READY == drive.core.phase
    out = drive(ev.AgentExited(3))
    assert [fx.EndSession("agent exited with code 3")] == of(fx.EndSession, out)


def test_updates_during_reattach_are_not_shown_again() -> None:
    """session/load replays history: updates while restarting do not reach the screens."""
    drive = Driver().ready()
    drive(ev.AgentExited(1))
    assert [] == shown(drive(ev.AgentUpdate(acp.update_agent_message_text("old"))))


def test_failed_reattach_ends_the_session() -> None:
    """If the restarted agent cannot load the session, the session ends with a reason."""
    drive = Driver().ready()
    drive(ev.AgentExited(1))
    out = drive(ev.ReattachFailed("no such session"))
    assert any("no such session" in n for n in notices(out)) and of(fx.EndSession, out)


# -- approvals -------------------------------------------------------------------------


def test_first_answer_wins_and_names_the_screen() -> None:
    """Terminal and viewer race: the first decision answers the agent; the second changes nothing."""
    drive = Driver().ready().turn()
    approval = drive.ask()
    out = drive.decide(approval, "allow")
    assert [fx.Answer(1, "allow")] == of(fx.Answer, out)
    assert [] == drive(ev.FromScreen("terminal", Decide(approval_id=approval, option_id="reject")))
    assert f"test phone ({DEVICE.id})" == drive.core.approvals.get(approval).decided_by  # type: ignore[union-attr]


def test_approval_expires_on_the_tick_after_its_deadline() -> None:
    """An approval times out to its reject option on the first tick at or after its deadline, not before."""
    drive = Driver(timeout=30).ready().turn()
    wake = of(fx.WakeAt, drive.effects)
    drive.ask()
    wake = of(fx.WakeAt, drive.effects)
    assert [fx.WakeAt(1030.0)] == wake
    drive.now = 1029.9
    assert [] == of(fx.Answer, drive(ev.Tick()))
    drive.now = 1030.0
    out = drive(ev.Tick())
    assert [fx.Answer(1, "reject")] == of(fx.Answer, out)
    assert ["An approval timed out and was denied."] == notices(out)
    assert [fx.WakeAt(None)] == of(fx.WakeAt, out)


def test_approval_shows_what_it_showed_when_it_opened() -> None:
    """An agent update with the approval's id cannot rewrite the approval card."""
    drive = Driver().ready().turn()
    approval = drive.ask(paths=("/etc/cron.d/evil",))
    title = drive.core.transcript.entries[approval]["title"]
    drive(ev.AgentUpdate(acp.update_tool_call(approval, title="Write notes.txt")))
    assert title == drive.core.transcript.entries[approval]["title"]
    assert "OUTSIDE the project: /etc/cron.d/evil" in title


def test_skip_permissions_approves_only_when_local() -> None:
    """--dangerously-skip-permissions answers by itself while Remote Control is off, never while on."""
    local = Driver(skip=True).ready().turn()
    local.ask()
    assert [fx.Answer(1, "allow")] == of(fx.Answer, local.effects)
    remote = Driver(skip=True).ready()
    remote(ev.RemoteChanged(True))
    remote.turn().ask()
    assert [] == of(fx.Answer, remote.effects)


def test_always_allow_is_withheld_for_claude_under_remote_control() -> None:
    """Claude Code's "always" would silently enter acceptEdits: not offered under Remote Control."""
    drive = Driver(preset="claude").ready(modes=None)
    drive(ev.RemoteChanged(True))
    approval = drive.turn().ask()
    kinds = [o.kind for o in drive.core.approvals.get(approval).options]  # type: ignore[union-attr]
    assert ["allow_once", "reject_once"] == kinds


# -- the host's own check of writes and commands ---------------------------------------


def test_write_without_an_approval_is_asked_by_the_host() -> None:
    """A write no approval covers opens a host approval naming the path; deny refuses it."""
    drive = Driver().ready().turn()
    assert [] == of(fx.Permit, drive(ev.WriteAsked(7, f"{ROOT}/notes.md", "notes.md")))
    (approval,) = drive.core.approvals.pending()
    assert ("host", "Write notes.md") == (approval.source, approval.title)
    out = drive.decide(approval.id, "deny")
    assert [7] == [p.request for p in of(fx.Permit, out) if not p.allowed]


def test_granted_approval_covers_writes_to_its_paths_in_the_turn() -> None:
    """An allowed approval naming a path covers writes to it until the turn ends, and no other path."""
    drive = Driver().ready().turn()
    approval = drive.ask(paths=("a.txt",))
    drive.decide(approval, "allow")
    assert [fx.Permit(2, True)] == of(fx.Permit, drive(ev.WriteAsked(2, f"{ROOT}/a.txt", "a.txt")))
    assert [fx.Permit(3, True)] == of(fx.Permit, drive(ev.WriteAsked(3, f"{ROOT}/a.txt", "a.txt")))
    assert [] == of(fx.Permit, drive(ev.WriteAsked(4, f"{ROOT}/b.txt", "b.txt")))
    drive(ev.FromScreen("terminal", Cancel()))
    drive(ev.TurnEnded("cancelled"))
    drive.turn()
    assert [] == of(fx.Permit, drive(ev.WriteAsked(5, f"{ROOT}/a.txt", "a.txt")))


def test_execute_approval_covers_one_command() -> None:
    """An allowed execute approval covers the next single command; the one after asks again."""
    drive = Driver().ready().turn()
    approval = drive.ask(kind="execute")
    drive.decide(approval, "allow")
    assert [fx.Permit(2, True)] == of(fx.Permit, drive(ev.CommandAsked(2, ("sh", "-c", "ls"), ROOT)))
    assert [] == of(fx.Permit, drive(ev.CommandAsked(3, ("sh", "-c", "rm -rf x"), ROOT)))
    assert "Run sh -c 'rm -rf x' in /work/project" == drive.core.approvals.pending()[-1].title


def test_denied_approval_covers_nothing() -> None:
    """A rejected approval grants nothing: the write that follows is asked by the host."""
    drive = Driver().ready().turn()
    approval = drive.ask(paths=("a.txt",))
    drive.decide(approval, "reject")
    assert [] == of(fx.Permit, drive(ev.WriteAsked(2, f"{ROOT}/a.txt", "a.txt")))


def test_added_variables_always_ask_and_are_shown() -> None:
    """A command with variables the agent added is asked by the host, each variable shown, risky ones flagged."""
    drive = Driver().ready().turn()
    approval = drive.ask(kind="execute")
    drive.decide(approval, "allow")
    out = drive(ev.CommandAsked(2, ("make",), ROOT, (("LD_PRELOAD", "/tmp/x.so"), ("COLOR", "1"))))
    assert [] == of(fx.Permit, out)
    title = drive.core.approvals.pending()[-1].title
    assert "LD_PRELOAD=/tmp/x.so (changes what runs)" in title and "COLOR=1" in title
    assert "COLOR=1 (changes" not in title


# -- self-approving modes under Remote Control -----------------------------------------


def test_remote_on_moves_a_self_approving_agent_to_asking() -> None:
    """Turning Remote Control on with the agent in a self-approving mode switches it, enforcing."""
    drive = Driver(preset="claude").ready(modes=claude_modes("default"))
    drive(ev.ModeChanged("acceptEdits"))  # chosen locally (a start in it is switched at once)
    out = drive(ev.RemoteChanged(True))
    assert [fx.ChangeMode("default", enforcing=True)] == of(fx.ChangeMode, out)


def claude_modes(current: str) -> schema.SessionModeState:
    ids = ["default", "acceptEdits", "plan"]
    return schema.SessionModeState(current_mode_id=current, available_modes=[schema.SessionMode(id=i, name=i)
                                                                              for i in ids])  # fmt: skip


def test_prompts_wait_while_the_mode_is_being_enforced() -> None:
    """No turn starts while the switch back to an asking mode is in flight."""
    drive = Driver(preset="claude").ready(modes=claude_modes("acceptEdits"))
    drive(ev.RemoteChanged(True))
    assert [] == of(fx.StartTurn, drive(ev.FromScreen("viewer", Prompt(text="go"))))
    assert [fx.StartTurn("go")] == of(fx.StartTurn, drive(ev.ModeChanged("default")))


def mode_option(current: str) -> list[schema.SessionConfigOptionSelect]:
    choices = [schema.SessionConfigSelectOption(value=v, name=v) for v in ("ask", "acceptEdits")]
    return [schema.SessionConfigOptionSelect(id="mode", name="Mode", category="mode", type="select",
                                             current_value=current, options=choices)]  # fmt: skip


@pytest.mark.parametrize(
    "update",
    [
        schema.CurrentModeUpdate(session_update="current_mode_update", current_mode_id="acceptEdits"),
        schema.ConfigOptionUpdate(session_update="config_option_update", config_options=mode_option("acceptEdits")),
    ],
    ids=["mode update", "config option update"],
)
def test_agent_switching_itself_is_moved_back_by_either_door(update: Any) -> None:
    """One rule for both doors: a self-approving mode update or mode-category option update is moved back."""
    drive = Driver().ready()
    drive(ev.RemoteChanged(True))
    out = drive(ev.AgentUpdate(update))
    moves = of(fx.ChangeMode, out) + of(fx.ChangeOption, out)
    assert 1 == len(moves) and moves[0].enforcing
    assert any("switched itself" in n for n in notices(out))


def test_a_failed_enforcement_ends_remote_control_visibly() -> None:
    """If the agent refuses to go back to asking, every screen is told and Remote Control ends."""
    drive = Driver().ready()
    drive(ev.RemoteChanged(True))
    drive(ev.AgentUpdate(schema.CurrentModeUpdate(session_update="current_mode_update", current_mode_id="acceptEdits")))
    drive.turn(by="viewer")
    out = drive(ev.CallFailed("mode", "refused", enforcing=True))
    assert 1 == len(of(fx.EndRemote, out)) and not drive.core.controls.remote
    assert any("Remote Control is off" in n for n in notices(out))
    assert [] == of(fx.StartTurn, out)  # the phone's prompt is not run unasked


def test_self_approving_choices_are_refused_from_screens_under_remote_control() -> None:
    """set_mode and set_option to a self-approving value are refused while Remote Control is on."""
    drive = Driver(preset="claude").ready(modes=claude_modes("default"))
    drive(ev.RemoteChanged(True))
    drive(ev.OptionsChanged(mode_option("ask")))
    assert [] == of(fx.ChangeMode, drive(ev.FromScreen("viewer", SetMode(mode_id="acceptEdits"))))
    assert [] == of(fx.ChangeOption, drive(ev.FromScreen("viewer", SetOption(option_id="mode", value="acceptEdits"))))
    assert [fx.ChangeMode("plan")] == of(fx.ChangeMode, drive(ev.FromScreen("viewer", SetMode(mode_id="plan"))))


def test_no_asking_mode_refuses_remote_control() -> None:
    """An agent stuck in a self-approving mode with nothing that asks: Remote Control is refused."""
    modes = schema.SessionModeState(current_mode_id="acceptEdits",
                                    available_modes=[schema.SessionMode(id="acceptEdits", name="Edits")])  # fmt: skip
    drive = Driver().ready(modes=modes)
    assert 1 == len(of(fx.EndRemote, drive(ev.RemoteChanged(True))))


def test_a_viewer_that_fell_behind_gets_a_fresh_snapshot() -> None:
    """ViewerBehind answers with a snapshot for that viewer only: it catches up from the transcript."""
    drive = Driver().ready().turn("one")
    (show,) = of(fx.Show, drive(ev.ViewerBehind("viewer")))
    assert "viewer" == show.to and isinstance(show.message, Snapshot)


def test_a_notice_reaches_every_screen() -> None:
    """A failure the shell reports is a system message on every screen."""
    drive = Driver().ready()
    out = drive(ev.Notice("Internal error in the turn"))
    assert ["Internal error in the turn"] == notices(out) and all(s.to is None for s in of(fx.Show, out))


def test_slash_commands_reach_every_screen_in_the_controls_entry() -> None:
    """available_commands_update: the controls entry lists each command with its description and input hint."""
    drive = Driver().ready()
    update = schema.AvailableCommandsUpdate(
        session_update="available_commands_update",
        available_commands=[
            schema.AvailableCommand(name="review", description="Review the changes",
                                    input=schema.AvailableCommandInput(schema.UnstructuredCommandInput(hint="what"))),
            schema.AvailableCommand(name="init", description="Write AGENTS.md"),
        ],
    )  # fmt: skip
    entries = [m.entry for m in shown(drive(ev.AgentUpdate(update))) if isinstance(m, Entry)]
    assert [
        {"name": "review", "description": "Review the changes", "hint": "what"},
        {"name": "init", "description": "Write AGENTS.md", "hint": None},
    ] == [e for e in entries if e["id"] == "controls"][-1]["commands"]
