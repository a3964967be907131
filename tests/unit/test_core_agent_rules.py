"""Rules that keep every agent asking (issue 14 and issue 11's start mode), on the pure session core."""

from __future__ import annotations

from typing import Any

from acp import schema

from tether.agents.presets import PRESETS
from tether.host.core import effects as fx
from tether.host.core import events as ev
from tether.host.core.approvals import Option
from tether.host.core.session import AgentInfo, SessionCore
from tether.protocol.messages import Authenticate, Decide, Entry, Output, Prompt

ROOT = "/work/project"
OPTIONS = (
    Option("allow", "Allow", "allow_once"),
    Option("always", "Always allow", "allow_always"),
    Option("reject", "Reject", "reject_once"),
)


def modes(current: str, *ids: str) -> schema.SessionModeState:
    return schema.SessionModeState(current_mode_id=current,
                                   available_modes=[schema.SessionMode(id=i, name=i) for i in ids])  # fmt: skip


def mode_option(current: str, *ids: str) -> schema.SessionConfigOptionSelect:
    choices = [schema.SessionConfigSelectOption(value=i, name=i) for i in ids]
    return schema.SessionConfigOptionSelect(id="mode", name="Mode", category="mode", type="select",
                                            current_value=current, options=choices)  # fmt: skip


def resolve(path: str) -> str | None:
    full = path if path.startswith("/") else f"{ROOT}/{path}"
    return full if full.startswith(ROOT) else None


class Core:
    """A session core with a fixed clock; every effect kept."""

    def __init__(self, preset: str | None = None, skip: bool = False) -> None:
        agent = AgentInfo(preset or "scripted", ("agent",), PRESETS[preset] if preset else None)
        self.core = SessionCore(ROOT, agent, resolve, 600.0, skip_permissions=skip)
        self.effects: list[fx.Effect] = []

    def __call__(self, event: ev.Event) -> list[fx.Effect]:
        out = self.core.handle(event, 1000.0)
        self.effects += out
        return out

    def open(self, state: Any = None, options: Any = None) -> Core:
        self(ev.SessionOpened(modes=state if state is not None else modes("ask", "ask", "acceptEdits"),
                              options=options))  # fmt: skip
        return self

    def remote(self) -> Core:
        self(ev.RemoteChanged(True))
        return self

    def prompt(self, text: str = "go") -> Core:
        self(ev.FromScreen("terminal", Prompt(text=text)))
        return self

    def tool(self, call_id: str, kind: str | None = None, status: str | None = None, **fields: Any) -> list[fx.Effect]:
        return self(ev.AgentUpdate(schema.ToolCallProgress(session_update="tool_call_update", tool_call_id=call_id,
                                                           kind=kind, status=status, **fields)))  # fmt: skip

    def entry(self, entry_id: str) -> dict[str, Any]:
        return self.core.transcript.entries[entry_id]

    def system_texts(self) -> list[str]:
        return [
            e.entry["text"] for e in shown(self.effects) if isinstance(e, Entry) and e.entry.get("role") == "system"
        ]


def shown(effects: list[fx.Effect]) -> list[Any]:
    return [e.message for e in effects if isinstance(e, fx.Show)]


def of(kind: type, effects: list[fx.Effect]) -> list[Any]:
    return [e for e in effects if isinstance(e, kind)]


# -- the generic guard -----------------------------------------------------------------


def test_an_edit_completed_without_asking_under_remote_ends_remote_control() -> None:
    """An edit that reaches completed with no permission request: flagged on every screen, Remote Control ends."""
    core = Core().open().remote().prompt()
    core.tool("c1", "edit", "pending", title="Write a.txt")
    out = core.tool("c1", status="completed")
    assert 1 == len(of(fx.EndRemote, out))
    assert core.entry("tool:c1")["title"].startswith("ACTED WITHOUT ASKING")
    assert any("acted without asking" in t for t in core.system_texts())
    assert core.core.controls.remote is False


def test_an_asked_edit_and_a_local_session_are_left_alone() -> None:
    """With a permission request, or with Remote Control off, a completed edit is no alarm."""
    core = Core().open().remote().prompt()
    core.tool("c1", "edit", "pending", title="Write a.txt")
    call = schema.ToolCallUpdate(tool_call_id="c1", title="Write a.txt", kind="edit")
    core(ev.PermissionAsked(1, call, OPTIONS))
    core(ev.FromScreen("terminal", Decide(approval_id="approval-1", option_id="allow")))
    assert [] == of(fx.EndRemote, core.tool("c1", status="completed"))
    local = Core().open().prompt()
    local.tool("c2", "delete", "pending", title="Delete b.txt")
    assert [] == of(fx.EndRemote, local.tool("c2", status="completed"))


def test_a_read_or_a_host_approved_write_is_no_alarm() -> None:
    """A read needs no asking; an edit whose write the host asked about itself was asked."""
    core = Core().open().remote().prompt()
    core.tool("r", "read", "pending", title="Read a.txt")
    assert [] == of(fx.EndRemote, core.tool("r", status="completed"))
    core.tool("w", "edit", "pending", title="Write a.txt")
    core(ev.WriteAsked(7, f"{ROOT}/a.txt", "a.txt"))
    core(ev.FromScreen("terminal", Decide(approval_id="approval-1", option_id="allow")))
    assert [] == of(fx.EndRemote, core.tool("w", status="completed"))


def test_a_command_codex_ran_in_its_read_only_sandbox_is_no_alarm() -> None:
    """Execute inside a confinement tether knows (Codex read-only) is not acted-without-asking; outside it is."""
    core = Core("codex").open(modes("read-only", "read-only", "agent")).remote().prompt()
    core.tool("x", "execute", "in_progress", title="ls")
    assert [] == of(fx.EndRemote, core.tool("x", status="completed"))
    claude = Core("claude").open(modes("default", "default", "acceptEdits")).remote().prompt()
    claude.tool("y", "execute", "in_progress", title="rm -rf build")
    assert 1 == len(of(fx.EndRemote, claude.tool("y", status="completed")))


# -- "always" options the agent cannot keep to one request ---------------------------------


def test_gemini_and_opencode_always_is_withheld_under_remote() -> None:
    """Gemini's 'for this session' enters autoEdit, OpenCode's 'always' allows everything: not offered remotely."""
    for name, state in (("gemini", modes("default", "default", "autoEdit", "yolo")), ("opencode", None)):
        core = Core(name).open(state or schema.SessionModeState(current_mode_id="build", available_modes=[
            schema.SessionMode(id="build", name="Build")])).remote().prompt()  # fmt: skip
        core(ev.PermissionAsked(1, schema.ToolCallUpdate(tool_call_id="c", title="Write", kind="edit"), OPTIONS))
        assert ["allow_once", "reject_once"] == [o["kind"] for o in core.entry("approval-1")["options"]], name
        assert any("'Always allow' is not offered" in t for t in core.system_texts()), name


def test_opencode_is_started_with_its_asking_permission() -> None:
    """OpenCode's preset carries OPENCODE_PERMISSION so that its build mode asks for every edit and command."""
    assert ("OPENCODE_PERMISSION", '{"edit":"ask","bash":"ask"}') in PRESETS["opencode"].env


# -- every card reaches a final state -------------------------------------------------------


def test_cards_left_open_are_closed_when_the_turn_ends() -> None:
    """A pending and a running card at the end of a turn become failed, saying they were closed by tether."""
    core = Core().open().prompt()
    core.tool("p", "edit", "pending", title="Write a.txt")
    core.tool("r", "execute", "in_progress", title="make")
    core.tool("d", "read", "completed", title="Read")
    core(ev.TurnEnded("end_turn"))
    assert ("failed", "failed", "completed") == tuple(core.entry(f"tool:{i}")["status"] for i in "prd")
    assert "closed as not run" in core.entry("tool:p")["content"][-1]["text"]


# -- each control once ------------------------------------------------------------------------


def test_a_mode_option_that_repeats_the_modes_is_shown_once() -> None:
    """Session modes and a mode-category option with the same choices: one Mode menu, in step with both doors."""
    core = Core("claude").open(modes("default", "default", "acceptEdits", "plan"),
                               [mode_option("default", "default", "acceptEdits", "plan")])  # fmt: skip
    controls = core.entry("controls")
    assert [] == controls["options"]
    assert ["default", "acceptEdits", "plan"] == [m["id"] for m in controls["modes"]["available"]]
    core(ev.AgentUpdate(schema.ConfigOptionUpdate(session_update="config_option_update",
                                                  config_options=[mode_option("plan", "default", "acceptEdits",
                                                                              "plan")])))  # fmt: skip
    assert "plan" == core.entry("controls")["modes"]["current"]


# -- start asking, and the banner -------------------------------------------------------------


def test_an_agent_starting_self_approving_is_moved_to_asking_locally_too() -> None:
    """Claude Code starts in auto: even with Remote Control off, tether switches it to default first."""
    core = Core("claude")
    out = core(ev.SessionOpened(modes=modes("auto", "default", "auto", "acceptEdits")))
    assert [fx.ChangeMode("default", enforcing=True)] == of(fx.ChangeMode, out)
    assert core.entry("banner")["text"].startswith("⚠")
    core.prompt()
    assert [] == of(fx.StartTurn, core.effects), "no prompt runs before the agent asks"
    out = core(ev.ModeChanged("default"))
    assert [fx.StartTurn("go")] == of(fx.StartTurn, out)
    assert not core.entry("banner")["on"]


def test_a_self_approving_mode_chosen_locally_keeps_a_banner() -> None:
    """A person who picks acceptEdits locally gets it, with a banner on every screen while it lasts."""
    core = Core().open()
    core(ev.ModeChanged("acceptEdits"))
    assert (True, core.core.controls.banner()) == (core.entry("banner")["on"], core.entry("controls")["banner"])
    assert "acceptEdits" in core.entry("banner")["text"]


def test_skipped_permissions_show_a_banner() -> None:
    """--dangerously-skip-permissions (local only) is announced by a banner from the start."""
    core = Core(skip=True).open()
    assert "--dangerously-skip-permissions" in core.entry("banner")["text"]


# -- commands the agent runs itself (Codex) ------------------------------------------------------


def test_codex_terminal_meta_shows_command_output_and_exit_code() -> None:
    """_meta.terminal_info / terminal_output / terminal_exit become the card's command, output and exit code."""
    core = Core("codex").open(modes("read-only", "read-only", "agent")).prompt()
    core(ev.AgentUpdate(schema.ToolCallStart(
        session_update="tool_call", tool_call_id="call_1", title="ls -a", kind="execute", status="in_progress",
        content=[schema.TerminalToolCallContent(type="terminal", terminal_id="call_1")],
        raw_input={"command": ["bash", "-lc", "ls -a"]}, field_meta={"terminal_info": {"terminal_id": "call_1"}},
    )))  # fmt: skip
    core(ev.AgentUpdate(schema.ToolCallProgress(session_update="tool_call_update", tool_call_id="call_1",
                                                field_meta={"terminal_output": {"terminal_id": "call_1",
                                                                                "data": "a.txt\n"}})))  # fmt: skip
    core(ev.AgentUpdate(schema.ToolCallProgress(session_update="tool_call_update", tool_call_id="call_1",
                                                status="completed", field_meta={"terminal_exit": {
                                                    "terminal_id": "call_1", "exit_code": 0}})))  # fmt: skip
    [terminal] = core.entry("tool:call_1")["content"]
    assert ("bash -lc ls -a", "a.txt\n", 0) == (terminal["command"], terminal["output"], terminal["exit_code"])
    sent = [m for m in shown(core.effects) if isinstance(m, Output)]
    assert [Output(id="tool:call_1", terminal_id="call_1", text="a.txt\n")] == sent, "output goes as a delta"


# -- a login asked for at the first prompt --------------------------------------------------------


def test_a_login_needed_mid_session_shows_the_methods_and_login_answers() -> None:
    """A prompt answered auth-required: the login entry shows the agent's methods and /login authenticates."""
    core = Core("claude").open(modes("default", "default", "plan")).prompt()
    method = schema.AuthMethodAgent(id="claude-login", name="Log in with Claude")
    core(ev.LoginNeeded((method,), "Authentication required"))
    core(ev.TurnEnded("error", "The agent reported an error: Authentication required"))
    login = core.entry("login")
    assert ("needed", ["claude-login"]) == (login["state"], [m["id"] for m in login["methods"]])
    out = core(ev.FromScreen("terminal", Authenticate(method_id="claude-login")))
    assert [fx.Login("claude-login")] == of(fx.Login, out)


def test_a_start_mode_chosen_in_config_is_used() -> None:
    """agent.mode = plan: the agent starts in plan (not the preset's asking mode); the choice is the person's."""
    core = Core("claude")
    core.core.controls.chosen_mode = "plan"
    out = core(ev.SessionOpened(modes=modes("auto", "default", "auto", "plan")))
    assert [fx.ChangeMode("plan", enforcing=True)] == of(fx.ChangeMode, out)
    assert any("(agent.mode)" in t for t in core.system_texts())


def said(text: str) -> ev.AgentUpdate:
    block = schema.TextContentBlock(type="text", text=text)
    return ev.AgentUpdate(schema.AgentMessageChunk(session_update="agent_message_chunk", content=block))


def test_a_gemini_mode_switch_told_as_text_counts() -> None:
    """Gemini's "[MODE_UPDATE] autoEdit" agent text moves the Mode menu and shows the banner; under remote, back."""
    core = Core("gemini").open(modes("default", "default", "autoEdit", "yolo")).prompt()
    core(said("[MODE_UPDATE] autoEdit"))
    assert ("autoEdit", True) == (core.entry("controls")["modes"]["current"], core.entry("banner")["on"])
    core.remote()
    core(said("[MODE_UPDATE] yolo"))
    assert fx.ChangeMode("default", enforcing=True) in core.effects


def test_a_command_run_under_tethers_sandbox_is_no_alarm() -> None:
    """Under --sandbox, a command the agent ran itself was confined; an unasked edit still ends Remote Control."""
    core = Core("claude").open(modes("default", "default", "plan"))
    core.core.controls.sandboxed = True
    core.remote().prompt()
    core.tool("x", "execute", "in_progress", title="make")
    assert [] == of(fx.EndRemote, core.tool("x", status="completed"))
    core.tool("e", "edit", "in_progress", title="Write a.txt")
    assert 1 == len(of(fx.EndRemote, core.tool("e", status="completed")))


def test_codex_workspace_write_counts_as_self_approving() -> None:
    """Codex's workspace-write edits the project unasked: under Remote Control it is moved to read-only."""
    core = Core("codex").open(modes("read-only", "read-only", "workspace-write", "agent"))
    core(ev.ModeChanged("workspace-write"))
    assert core.entry("banner")["on"]
    assert [fx.ChangeMode("read-only", enforcing=True)] == of(fx.ChangeMode, core(ev.RemoteChanged(True)))


def test_a_write_covered_by_an_earlier_approval_is_no_alarm() -> None:
    """A second tool call whose write an approval of this turn already covers (same path) was asked."""
    core = Core().open().remote().prompt()
    call = schema.ToolCallUpdate(tool_call_id="c1", title="Write a.txt", kind="edit",
                                 locations=[schema.ToolCallLocation(path=f"{ROOT}/a.txt")])  # fmt: skip
    core(ev.PermissionAsked(1, call, OPTIONS))
    core(ev.FromScreen("terminal", Decide(approval_id="approval-1", option_id="allow")))
    core.tool("c1", status="completed")
    core.tool("c2", "edit", "in_progress", title="Write a.txt again")
    assert [fx.Permit(2, True)] == of(fx.Permit, core(ev.WriteAsked(2, f"{ROOT}/a.txt", "a.txt")))
    assert [] == of(fx.EndRemote, core.tool("c2", status="completed"))
