"""The real Gemini CLI (``--acp``), driven from a viewer: relay + `tether rc --agent gemini` + ViewerClient.

Everything is real (the npm package @google/gemini-cli at the preset's pin, tether, the
relay, sockets on 127.0.0.1) except the Gemini API: FakeGemini speaks its streaming
format and plays the model from what each request carries (see ``model``). Gemini CLI
reaches it through ``GOOGLE_GEMINI_BASE_URL`` (its "gateway" auth) with any
``GEMINI_API_KEY``; its settings in the private HOME turn off usage statistics, so
nothing leaves the machine. Besides the conversation it asks a router classifier and a
next-speaker check (no tools, a JSON answer): ``model`` answers those too.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import UNIT
from tests.e2e.npm_agents import INSTALL_TIMEOUT, AgentRuns, npm_cache, open_cards, option_id, private_home, runs
from tests.e2e.npm_agents import strongest_allow as strongest
from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.model_server import RecordedRequest, Turn, call
from tether.agents.presets import GEMINI_CLI
from tether.testing import ViewerClient

WAIT = 30 * UNIT  # Gemini CLI's own work between two viewer events (measured: under 2 s)
pytestmark = pytest.mark.timeout(INSTALL_TIMEOUT + 120)


def model(request: RecordedRequest) -> Turn:
    """The fake model: a JSON answer to side requests; in the conversation, a write per "please create file X"."""
    body = request.body or {}
    if not body.get("tools"):
        if "complexity_score" in json.dumps(body):
            return Turn(text=json.dumps({"complexity_reasoning": "one file", "complexity_score": 10}))
        return Turn(text=json.dumps({"reasoning": "the task is done", "next_speaker": "user"}))
    parts = body["contents"][-1]["parts"]
    if any("functionResponse" in part for part in parts):
        return Turn(text="Done.")
    text = " ".join(part.get("text", "") for part in parts)
    if "think forever" in text:
        return Turn(text="Thinking very hard", hang=True)
    name = re.search(r"please create file (\S+)", text)
    cwd = re.search(r"tether-project=([^\s)]+)", text)
    if not (name and cwd):
        return Turn(text=f"(fake model: no instruction in {text[-200:]!r})")
    return Turn(text="Creating it.", tool_calls=(call("write_file", file_path=f"{cwd[1]}/{name[1]}", content="hi\n"),))


@pytest.fixture
def agents(project: Path, tether_env: dict[str, str], relay: str) -> Iterator[AgentRuns]:
    yield from runs(project, tether_env, relay)


async def test_gemini_asks_for_new_files_keeps_asking_and_stops(agents: AgentRuns, project: Path,
                                                                 tmp_path: Path) -> None:  # fmt: skip
    """New file asks and lands; "for this session" withheld; the next file still asks; a denial holds; stop works."""
    cache = npm_cache(GEMINI_CLI)
    home = tmp_path / "home"
    (home / ".gemini").mkdir(parents=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps({
        "privacy": {"usageStatisticsEnabled": False}, "telemetry": {"enabled": False},
        "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
    }))  # fmt: skip
    async with FakeGemini(side=model) as fake:
        clean = {k: v for k, v in agents.env.items() if not k.startswith(("GEMINI_", "GOOGLE_", "XDG_"))}
        env = clean | private_home(home, cache) | {"GOOGLE_GEMINI_BASE_URL": fake.base_url, "GEMINI_API_KEY": "k"}
        run = agents.start("gemini", env)
        where = f"(tether-project={await asyncio.to_thread(project.resolve)})"  # the folder as tether names it
        agents.fake = fake
        async with ViewerClient(run.url) as viewer:
            controls = await viewer.wait_for(lambda v: v.entries.get("controls"), WAIT)
            assert ("default", True) == (controls["modes"]["current"], controls["remote"])

            await viewer.prompt(f"please create file hello.txt {where}")
            first = await viewer.wait_for(lambda v: v.pending_approval() or v.stop_reasons, WAIT)
            assert isinstance(first, dict), f"no approval for a new file: {viewer.texts('agent')}"
            assert not (project / "hello.txt").exists()
            # "Allow for this session" would switch Gemini to autoEdit, told only as agent text: withheld.
            assert ["allow_once", "reject_once"] == [o["kind"] for o in first["options"]]
            await viewer.decide(first["id"], strongest(first))
            await viewer.wait_for(lambda v: len(v.stop_reasons) == 1, WAIT)
            assert "hi\n" == (project / "hello.txt").read_text()
            assert [] == open_cards(viewer)

            await viewer.prompt(f"please create file other.txt {where}")
            second = await viewer.wait_for(lambda v: v.pending_approval(), WAIT)
            assert "other.txt" in second["title"]
            await viewer.decide(second["id"], option_id(second, "reject_once"))
            await viewer.wait_for(lambda v: len(v.stop_reasons) == 2, WAIT)
            assert not (project / "other.txt").exists()
            assert [] == open_cards(viewer), "a denied card must not stay pending"

            await viewer.prompt("think forever")
            await viewer.wait_for(lambda v: any("Thinking" in t for t in v.texts("agent")), WAIT)
            await viewer.cancel()
            await viewer.wait_for(lambda v: len(v.stop_reasons) == 3, WAIT)
            assert "cancelled" == viewer.stop_reasons[2]
            assert [] == open_cards(viewer)
            assert "default" == viewer.entries["controls"]["modes"]["current"]
            print("stop reasons:", viewer.stop_reasons, "system:", viewer.texts("system"))
