"""The real Codex through its ACP adapter, driven from a viewer: relay + `tether rc --agent codex` + ViewerClient.

Everything is real (the npm package @agentclientprotocol/codex-acp at the preset's pin,
with the Codex binary it ships; tether, the relay, sockets on 127.0.0.1) except the
model: FakeResponses speaks the OpenAI Responses API streaming format. Codex ignores
``OPENAI_BASE_URL``; it reaches the fake through ``$HOME/.codex/config.toml`` (a model
provider with ``base_url``, ``env_key``, ``wire_api = "responses"``), the offline recipe
in the README. Codex runs commands itself and reports them in ``_meta.terminal_*``; a
command that must leave its sandbox asks first (``sandbox_permissions: require_escalated``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import UNIT
from tests.e2e.npm_agents import (
    INSTALL_TIMEOUT,
    AgentRuns,
    denial_holds_then_stop_works,
    npm_cache,
    open_cards,
    private_home,
    runs,
)
from tests.e2e.npm_agents import strongest_allow as strongest
from tests.fakes.fake_responses import FakeResponses
from tests.fakes.model_server import RecordedRequest, Turn, call
from tether.agents.presets import CODEX_ACP
from tether.testing import ViewerClient

WAIT = 30 * UNIT  # Codex's own work between two viewer events (measured: under 2 s)
pytestmark = pytest.mark.timeout(INSTALL_TIMEOUT + 120)


def model(request: RecordedRequest) -> Turn:
    """The fake model: "create X" runs ``echo hi > X`` outside Codex's sandbox (it asks first)."""
    last = (request.body or {})["input"][-1]
    if last.get("type") == "function_call_output":
        return Turn(text="Done.")
    text = json.dumps(last)
    if "think forever" in text:
        return Turn(text="Thinking very hard", hang=True)
    for name in ("hello.txt", "other.txt"):
        if f"create {name}" in text:
            command = call("exec_command", cmd=f"echo hi > {name}", sandbox_permissions="require_escalated",
                           justification=f"Create {name}?")  # fmt: skip
            return Turn(text="Creating it.", tool_calls=(command,))
    return Turn(text="(fake model: no instruction)")


def config(base_url: str) -> str:
    """``~/.codex/config.toml``: the fake as the model provider (Codex ignores OPENAI_BASE_URL)."""
    return (f'model = "gpt-fake"\nmodel_provider = "fake"\n\n[model_providers.fake]\nname = "Fake"\n'
            f'base_url = "{base_url}"\nenv_key = "OPENAI_API_KEY"\nwire_api = "responses"\n'
            "supports_websockets = false\n")  # fmt: skip


@pytest.fixture
def agents(project: Path, tether_env: dict[str, str], relay: str) -> Iterator[AgentRuns]:
    yield from runs(project, tether_env, relay)


async def test_codex_starts_asking_shows_its_commands_and_stops(agents: AgentRuns, project: Path,
                                                                 tmp_path: Path) -> None:  # fmt: skip
    """Codex starts in read-only; its command asks, lands, and its card shows command and exit code; deny; stop."""
    cache = npm_cache(CODEX_ACP)
    home = tmp_path / "home"
    (home / ".codex").mkdir(parents=True)
    async with FakeResponses(side=model) as fake:
        agents.fake = fake
        (home / ".codex" / "config.toml").write_text(config(fake.base_url))
        clean = {k: v for k, v in agents.env.items() if not k.startswith(("OPENAI_", "CODEX_", "XDG_"))}
        run = agents.start("codex", clean | private_home(home, cache) | {"OPENAI_API_KEY": "k"})
        async with ViewerClient(run.url) as viewer:
            controls = await viewer.wait_for(lambda v: v.entries.get("controls"), WAIT)
            # Codex starts in "agent" (runs commands unasked); tether moves it to read-only before any prompt.
            await viewer.wait_for(lambda v: v.entries["controls"]["modes"]["current"] == "read-only", WAIT)
            modes = {m["id"] for m in controls["modes"]["available"]}
            repeats = [o["id"] for o in controls["options"] if {c["value"] for c in o["choices"]} == modes]
            assert [] == repeats, "the modes are shown once, as the Mode menu"

            await viewer.prompt("please create hello.txt")
            first = await viewer.wait_for(lambda v: v.pending_approval() or v.stop_reasons, WAIT)
            assert isinstance(first, dict), f"Codex ran without asking: {viewer.of_type('tool_call')}"
            assert not (project / "hello.txt").exists()
            await viewer.decide(first["id"], strongest(first))  # a prefix rule for exactly this command
            await viewer.wait_for(lambda v: len(v.stop_reasons) == 1, WAIT)
            assert "hi\n" == (project / "hello.txt").read_text()
            [terminal] = viewer.entries[first["tool_call_id"]]["content"]
            assert ("echo hi > hello.txt", 0) == (terminal["command"], terminal["exit_code"]), "not 'running…'"
            assert [] == open_cards(viewer)

            await denial_holds_then_stop_works(viewer, "please create other.txt", project / "other.txt", WAIT)
            print("stop reasons:", viewer.stop_reasons, "system:", viewer.texts("system"))
