"""The real OpenCode (``opencode acp``), driven from a viewer: relay + `tether rc --agent opencode` + ViewerClient.

Everything is real (the npm package opencode-ai at the preset's pin, with the binary it
ships; tether, the relay, sockets on 127.0.0.1) except the model: FakeOpenAI speaks the
OpenAI Chat Completions streaming format, reached through an OpenAI-compatible provider
in the project's ``opencode.json`` (the offline recipe in the README). Models are not
fetched from the internet (``OPENCODE_DISABLE_MODELS_FETCH``). Its default ``build``
agent edits without asking; the preset's ``OPENCODE_PERMISSION`` makes it ask.
"""

from __future__ import annotations

import asyncio
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
    play,
    private_home,
    runs,
)
from tests.e2e.npm_agents import strongest_allow as strongest
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.model_server import RecordedRequest, Turn, call
from tether.agents.presets import OPENCODE
from tether.testing import ViewerClient

WAIT = 30 * UNIT  # OpenCode's own work between two viewer events (measured: under 2 s)
pytestmark = pytest.mark.timeout(INSTALL_TIMEOUT + 120)
OFFLINE = {"OPENCODE_DISABLE_MODELS_FETCH": "1", "OPENCODE_DISABLE_AUTOUPDATE": "1",
           "OPENCODE_DISABLE_LSP_DOWNLOAD": "1", "OPENCODE_DISABLE_SHARE": "1"}  # fmt: skip


def model(request: RecordedRequest) -> Turn:
    """The fake model: a title for side requests; in the conversation, a write per "please create file X"."""
    body = request.body or {}
    if not body.get("tools"):
        return Turn(text="Creating a file")
    last = body["messages"][-1]
    if last["role"] == "tool":
        return Turn(text="Done.")
    content = last.get("content")
    text = content if isinstance(content, str) else " ".join(p.get("text", "") for p in content or [])
    return play(text, lambda path: call("write", filePath=path, content="hi\n"))


def provider(base_url: str) -> dict[str, object]:
    """An ``opencode.json`` whose one model is the fake, through OpenAI-compatible chat completions."""
    return {
        "$schema": "https://opencode.ai/config.json",
        "provider": {"fake": {"npm": "@ai-sdk/openai-compatible", "name": "Fake",
                              "options": {"baseURL": base_url, "apiKey": "k"},
                              "models": {"fake-model": {"name": "Fake model"}}}},
        "model": "fake/fake-model", "small_model": "fake/fake-model", "autoupdate": False, "share": "disabled",
    }  # fmt: skip


@pytest.fixture
def agents(project: Path, tether_env: dict[str, str], relay: str) -> Iterator[AgentRuns]:
    yield from runs(project, tether_env, relay)


async def test_opencode_asks_keeps_asking_and_stops(agents: AgentRuns, project: Path, tmp_path: Path) -> None:
    """With OPENCODE_PERMISSION: a new file asks and lands; 'always' withheld; the next asks; denial holds; stop."""
    cache = npm_cache(OPENCODE)
    async with FakeOpenAI(side=model) as fake:
        agents.fake = fake
        (project / "opencode.json").write_text(json.dumps(provider(fake.base_url)))
        clean = {k: v for k, v in agents.env.items() if not k.startswith(("OPENCODE_", "OPENAI_", "XDG_"))}
        run = agents.start("opencode", clean | private_home(tmp_path / "home", cache) | OFFLINE)
        where = f"(tether-project={await asyncio.to_thread(project.resolve)})"
        async with ViewerClient(run.url) as viewer:
            await viewer.wait_for(lambda v: v.entries.get("controls"), WAIT)

            await viewer.prompt(f"please create file hello.txt {where}")
            first = await viewer.wait_for(lambda v: v.pending_approval() or v.stop_reasons, WAIT)
            assert isinstance(first, dict), f"OpenCode wrote without asking: {viewer.of_type('tool_call')}"
            assert not (project / "hello.txt").exists()
            # Its "Always allow" lets every later edit through: withheld under Remote Control (tether's own,
            # scoped to this one file for this session, may stand in its place: host/grants.py).
            assert ["allow_once", "reject_once"] == [o["kind"] for o in first["options"] if "scope" not in o]
            await viewer.decide(first["id"], strongest(first))
            await viewer.wait_for(lambda v: len(v.stop_reasons) == 1, WAIT)
            assert "hi\n" == (project / "hello.txt").read_text()
            assert [] == open_cards(viewer)

            await denial_holds_then_stop_works(
                viewer, f"please create file other.txt {where}", project / "other.txt", WAIT
            )
            print("stop reasons:", viewer.stop_reasons, "system:", viewer.texts("system"))
