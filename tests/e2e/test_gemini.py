"""The real Gemini CLI (``--acp``), driven from a real browser: relay + `tether rc --agent gemini` + Chromium.

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
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import UNIT, chromium
from tests.e2e.npm_agents import INSTALL_TIMEOUT, AgentRuns, npm_cache, play, private_home, runs
from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.model_server import RecordedRequest, Turn, call
from tether.agents.presets import GEMINI_CLI

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
    return play(text, lambda path: call("write_file", file_path=path, content="hi\n"))


@pytest.fixture
def agents(project: Path, tether_env: dict[str, str], relay: str) -> Iterator[AgentRuns]:
    yield from runs(project, tether_env, relay)


def gemini_env(agents: AgentRuns, home: Path, base_url: str) -> dict[str, str]:
    """The agent's environment: a private HOME with usage statistics off, the fake as its gateway."""
    (home / ".gemini").mkdir(parents=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps({
        "privacy": {"usageStatisticsEnabled": False}, "telemetry": {"enabled": False},
        "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
    }))  # fmt: skip
    clean = {k: v for k, v in agents.env.items() if not k.startswith(("GEMINI_", "GOOGLE_", "XDG_"))}
    return clean | private_home(home, npm_cache(GEMINI_CLI)) | {"GOOGLE_GEMINI_BASE_URL": base_url,
                                                                "GEMINI_API_KEY": "k"}  # fmt: skip


async def test_gemini_in_the_real_page(agents: AgentRuns, project: Path, tmp_path: Path) -> None:
    """Chromium on the rc URL: a new file asks, with no "always" (it would switch Gemini to autoEdit), and lands
    on approve-once; the next file still asks and a denial holds; stop works; no card is left pending."""
    from playwright.async_api import expect

    wait_ms = WAIT * 1000
    async with FakeGemini(side=model) as fake:
        agents.fake = fake
        run = agents.start("gemini", gemini_env(agents, tmp_path / "home", fake.base_url))
        where = f"(tether-project={await asyncio.to_thread(project.resolve)})"
        async with chromium() as browser:
            page = await (await browser.new_context()).new_page()
            await page.goto(run.url)
            await expect(page.get_by_test_id("connection-status")).to_have_text("connected", timeout=wait_ms)
            for name, button in (("page.txt", "approve-once"), ("denied.txt", "deny")):
                await page.get_by_test_id("prompt-input").fill(f"please create file {name} {where}")
                await page.get_by_test_id("prompt-send").click()
                card = page.get_by_test_id("approval")
                await expect(card).to_have_count(1, timeout=wait_ms)
                # Gemini's own "always" is withheld under Remote Control; tether's scoped one stands in its place.
                await expect(card.get_by_test_id("approve-always")).to_have_text(
                    f"Always allow edits of {name} (this session)"
                )
                await card.get_by_test_id(button).click()
                tool = page.get_by_test_id("tool-call").filter(has_text=name)
                status = "completed" if button == "approve-once" else "failed"
                await expect(tool).to_have_attribute("data-status", status, timeout=wait_ms)
                await expect(page.get_by_test_id("working")).to_be_hidden(timeout=wait_ms)
            await page.get_by_test_id("prompt-input").fill("think forever")
            await page.get_by_test_id("prompt-send").click()
            await expect(page.get_by_test_id("message").filter(has_text="Thinking")).to_have_count(1, timeout=wait_ms)
            await page.get_by_test_id("stop").click()
            await expect(page.get_by_test_id("working")).to_be_hidden(timeout=wait_ms)
            statuses = [await c.get_attribute("data-status") for c in await page.get_by_test_id("tool-call").all()]
            assert ["completed", "failed"] == statuses, "no card pending or running after its turn"
            await expect(page.get_by_test_id("mode-select")).to_have_value("default")
    assert ("hi\n", False) == ((project / "page.txt").read_text(), (project / "denied.txt").exists())
