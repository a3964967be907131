"""The real Claude Code, driven from a viewer: relay + `tether rc --agent claude` + ViewerClient.

Everything is real (the npm package `@agentclientprotocol/claude-agent-acp` with the
claude binary it ships, tether, the relay, sockets on 127.0.0.1) except the Anthropic API:
FakeAnthropic speaks its streaming format and plays the model. Claude Code sends, besides
its main conversation (every request offers its tools, Write and Edit among them), a
session-title request with no tools and a JSON-schema output format; ``side_reply``
answers those so they never consume the script.

The package (~400 MB) is installed once into ``.cache/npm`` in the repository (or
``TETHER_TEST_NPM_CACHE``); each agent start then runs offline from that cache, through a
private HOME whose ``.npmrc`` points there. That HOME and ``CLAUDE_CONFIG_DIR`` keep Claude
Code away from the developer's own ``~/.claude``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import UNIT, RcRun, start_rc, stop
from tests.e2e import npm_agents
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.fakes.model_server import FakeModelServer, RecordedRequest, Turn, call
from tether.agents.presets import CLAUDE_ACP
from tether.testing import ViewerClient, option_id

INSTALL_TIMEOUT = npm_agents.INSTALL_TIMEOUT  # a cold install downloads ~150 MB and unpacks ~400 MB
WAIT = 30 * UNIT  # Claude Code's own work between two viewer events (measured: 1-3 s)
SCRUBBED = ("ANTHROPIC_", "CLAUDE_", "XDG_")  # the developer's own settings and folders
PROMPT = "Please create hello.txt for me (tether-e2e-7f3a)"

# The suite's per-test timeout would cut a cold install short; every wait below is bounded.
pytestmark = pytest.mark.timeout(INSTALL_TIMEOUT + 120)


@pytest.fixture(scope="session")
def npm_cache() -> Path:
    """An npm cache holding the pinned claude-agent-acp, installed once (see module doc)."""
    # Started with stdin closed and no arguments, the agent exits at EOF once npx installed it.
    return npm_agents.npm_cache(CLAUDE_ACP, args=())


def claude_env(env: dict[str, str], home: Path, cache: Path, fake: FakeModelServer) -> dict[str, str]:
    """``env`` with a private HOME (and temp folder) for Claude Code and npx, pointed at ``fake``."""
    clean = {k: v for k, v in env.items() if not k.startswith(SCRUBBED)}
    return clean | npm_agents.private_home(home, cache) | {
        # HOME and TMPDIR come from private_home: Claude Code keeps probes and scratch files in $TMPDIR/claude-UID.
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "ANTHROPIC_BASE_URL": fake.base_url,
        "ANTHROPIC_API_KEY": "test-key",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }


def offers_tools(request: RecordedRequest) -> bool:
    """A request of the main conversation: it offers Claude Code's tools (Write among them)."""
    return any(tool.get("name") == "Write" for tool in request.body.get("tools") or [])


def side_reply(request: RecordedRequest) -> Turn | None:
    """Answer Claude Code's side requests (the session title); leave the conversation to the script."""
    if offers_tools(request):
        return None
    wants_json = "format" in (request.body.get("output_config") or {})
    return Turn(text=json.dumps({"title": "Hello file"}) if wants_json else "ok")


class Claude:
    """Starts `tether rc --agent claude` against a fake; stops it and shows the agent log at teardown."""

    def __init__(self, project: Path, env: dict[str, str], relay: str, cache: Path, tmp_path: Path) -> None:
        self.project, self.env, self.relay, self.cache, self.tmp_path = project, env, relay, cache, tmp_path
        self.runs: list[RcRun] = []

    def start(self, fake: FakeModelServer) -> RcRun:
        env = claude_env(self.env, self.tmp_path / "home", self.cache, fake)
        run = start_rc(self.project, env, self.relay, agent="claude")
        self.runs.append(run)
        return run

    def close(self) -> None:
        for run in self.runs:
            stop(run.process)
        # Shown by pytest only when the test failed: the agent's stderr (npx, Claude Code).
        for log in sorted(Path(self.env["TETHER_STATE_DIR"], "logs").glob("agent-*.log")):
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}")


@pytest.fixture
def claude(project: Path, tether_env: dict[str, str], relay: str, npm_cache: Path, tmp_path: Path) -> Iterator[Claude]:
    runner = Claude(project, tether_env, relay, npm_cache, tmp_path)
    yield runner
    runner.close()


async def test_prompt_reaches_claude_and_an_approved_write_lands(claude: Claude, project: Path) -> None:
    """The viewer's prompt reaches Claude Code; its Write asks through tether; approval writes the file."""
    target = project / "hello.txt"
    script = [
        Turn(text="I'll create it.", tool_calls=(call("Write", file_path=str(target), content="hello from Claude\n"),)),
        Turn(text="Created hello.txt."),
    ]
    async with FakeAnthropic(script, side=side_reply) as fake:
        run = claude.start(fake)
        async with ViewerClient(run.url) as viewer:
            await viewer.wait_for(lambda v: v.session)
            assert "claude" == viewer.session["agent"]
            controls = await viewer.wait_for(lambda v: v.entries.get("controls"), WAIT)
            print("Claude Code modes:", json.dumps(controls["modes"], indent=1))
            assert ("default", True) == (controls["modes"]["current"], controls["remote"])
            await viewer.prompt(PROMPT)
            approval = await viewer.wait_for(lambda v: v.pending_approval(), WAIT)
            assert not target.exists()
            conversation = [r for r in fake.model_requests() if offers_tools(r)]
            assert PROMPT in json.dumps(conversation[0].body["messages"])
            assert ("edit", "Write hello.txt") == (approval["kind"], approval["title"])
            # Claude's own "Always allow" would switch it to acceptEdits silently: withheld under Remote Control.
            # tether's scoped one (host/grants.py: this file, this session) answers Claude "allow once" instead.
            assert ["allow_once", "reject_once"] == [o["kind"] for o in approval["options"] if "scope" not in o]
            assert ["edits of hello.txt"] == [o["scope"] for o in approval["options"] if "scope" in o]
            assert any("'Always allow' is not offered" in t for t in viewer.texts("system"))
            diff = viewer.entries[approval["tool_call_id"]]["content"][0]
            assert ("diff", None, "hello from Claude\n") == (diff["type"], diff["old_text"], diff["new_text"])
            await viewer.decide(approval["id"], option_id(approval, "allow_once"))
            await viewer.wait_for(lambda v: v.stop_reasons, WAIT)
            assert ["end_turn"] == viewer.stop_reasons
            assert any("Created hello.txt." in t for t in viewer.texts("agent"))
            decided = viewer.entries[approval["id"]]
            assert ("decided", f"tether-testing ({viewer.device.id})") == (decided["state"], decided["decided_by"])
    assert "hello from Claude\n" == target.read_text()
    print("requests Claude Code sent:", [(r.method, r.path, r.body.get("model")) for r in fake.model_requests()])


async def test_denied_edit_leaves_the_file_untouched(claude: Claude, project: Path) -> None:
    """Claude Code reads, then asks to Edit; a denial from the viewer keeps the file as it was."""
    target = project / "keep.txt"
    target.write_text("original\n")
    script = [
        Turn(tool_calls=(call("Read", file_path=str(target)),)),
        Turn(tool_calls=(call("Edit", file_path=str(target), old_string="original", new_string="replaced"),)),
        Turn(text="Understood, I left keep.txt alone."),
    ]
    async with FakeAnthropic(script, side=side_reply) as fake:
        run = claude.start(fake)
        async with ViewerClient(run.url) as viewer:
            await viewer.prompt("Replace the word in keep.txt")
            approval = await viewer.wait_for(lambda v: v.pending_approval(), WAIT)
            assert ("edit", "Edit keep.txt") == (approval["kind"], approval["title"])
            await viewer.decide(approval["id"], option_id(approval, "reject_once"))
            await viewer.wait_for(lambda v: v.stop_reasons, WAIT)
            assert ["end_turn"] == viewer.stop_reasons
            assert any("left keep.txt alone" in t for t in viewer.texts("agent"))
            # The model was told: the Edit's tool result is Claude Code's own "refused" error.
            last = [r for r in fake.model_requests() if offers_tools(r)][-1]
            results = [c for c in last.body["messages"][-1]["content"] if c.get("type") == "tool_result"]
            assert [True] == [r.get("is_error") for r in results]
            assert "refused permission" in json.dumps(results[0]["content"])
    assert "original\n" == target.read_text()
    assert 1 == len(viewer.of_type("approval")), "Read needs no approval; only the Edit asked"


async def test_stop_cancels_the_turn(claude: Claude) -> None:
    """Stop from the viewer while Claude Code streams: the turn ends as cancelled, the next one runs."""
    script = [Turn(text="Thinking very hard", hang=True), Turn(text="Back again.")]
    async with FakeAnthropic(script, side=side_reply) as fake:
        run = claude.start(fake)
        async with ViewerClient(run.url) as viewer:
            await viewer.prompt("Think about it")
            await viewer.wait_for(lambda v: any("Thinking" in t for t in v.texts("agent")), WAIT)
            await viewer.cancel()
            await viewer.wait_for(lambda v: v.stop_reasons, WAIT)
            assert ["cancelled"] == viewer.stop_reasons
            async with asyncio.timeout(WAIT):
                await fake.wait_until(lambda: fake.disconnects == 1)  # Claude Code dropped the model stream
            await viewer.prompt("Are you there?")
            await viewer.wait_for(lambda v: len(v.stop_reasons) == 2, WAIT)
            assert ["cancelled", "end_turn"] == viewer.stop_reasons
            assert any("Back again." in t for t in viewer.texts("agent"))
    last = [r for r in fake.model_requests() if offers_tools(r)][-1]
    assert "[Request interrupted by user]" in json.dumps(last.body["messages"])


async def test_allow_always_never_leaves_claude_silently_self_approving(claude: Claude, project: Path) -> None:
    """After "allow always" on an edit, the next edit still asks, or every screen shows a self-approving mode."""
    script = [
        Turn(tool_calls=(call("Write", file_path=str(project / "a.txt"), content="a\n"),)),
        Turn(text="Wrote a.txt."),
        Turn(tool_calls=(call("Write", file_path=str(project / "b.txt"), content="b\n"),)),
        Turn(text="Wrote b.txt."),
    ]
    async with FakeAnthropic(script, side=side_reply) as fake:
        run = claude.start(fake)
        async with ViewerClient(run.url) as viewer:
            await viewer.prompt("Create a.txt")
            first = await viewer.wait_for(lambda v: v.pending_approval(), WAIT)
            if not any(o["kind"] == "allow_always" for o in first["options"]):
                return  # not offered under Remote Control: nothing can switch silently
            await viewer.decide(first["id"], option_id(first, "allow_always"))
            await viewer.wait_for(lambda v: v.stop_reasons, WAIT)
            await viewer.prompt("Create b.txt")
            await viewer.wait_for(lambda v: v.pending_approval() or len(v.stop_reasons) == 2, WAIT)
            asked = viewer.pending_approval() is not None
            modes = viewer.entries["controls"]["modes"]
            shown = any(m["id"] == modes["current"] and m["self_approving"] for m in modes["available"])
            assert asked or shown, f"b.txt written without asking while the viewer shows mode {modes['current']!r}"
