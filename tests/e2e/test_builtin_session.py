"""The built-in agent through the whole host path: relay + `tether rc` + viewer, fake model APIs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import UNIT, RcRun, start_rc, stop
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.model_server import Failure, FakeModelServer, Turn, call
from tether.testing import ViewerClient

SCRUBBED = ("ANTHROPIC_", "OPENAI_", "TETHER_AGENT_")


def model_env(env: dict[str, str], fake: FakeModelServer, provider: str) -> dict[str, str]:
    """``env`` without the developer's model settings, pointed at ``fake``."""
    clean = {k: v for k, v in env.items() if not k.startswith(SCRUBBED)}
    prefix = "ANTHROPIC" if provider == "anthropic" else "OPENAI"
    return clean | {f"{prefix}_BASE_URL": fake.base_url, f"{prefix}_API_KEY": "test-key"}


@pytest.fixture
def stopper() -> Iterator[list[RcRun]]:
    """The `tether rc` runs a test started, stopped at teardown."""
    runs: list[RcRun] = []
    yield runs
    for run in runs:
        stop(run.process)


def kind_of(approval: dict[str, object], kind: str) -> str:
    """The agent's own option id for an ACP option kind."""
    return next(o["option_id"] for o in approval["options"] if o["kind"] == kind)  # type: ignore[attr-defined, index]


async def test_multi_step_task_from_the_phone(
    project: Path, tether_env: dict[str, str], relay: str, stopper: list[RcRun]
) -> None:
    """Read, edit with a diff (approved on the device), a command (denied), an answer."""
    (project / "app.py").write_text("def greet():\n    return 'helo'\n")
    script = [
        Turn(text="Let me look.", tool_calls=(call("read_file", path="app.py"),)),
        Turn(tool_calls=(call("edit_file", path="app.py", old_string="'helo'", new_string="'hello'"),)),
        Turn(tool_calls=(call("run_command", command="rm -rf /tmp/never"),)),
        Turn(text="Fixed the typo; I did not run the command you denied."),
    ]
    async with FakeAnthropic(script) as fake:
        run = start_rc(project, model_env(tether_env, fake, "anthropic"), relay, agent="builtin")
        stopper.append(run)
        async with ViewerClient(run.url) as viewer:
            await viewer.wait_for(lambda v: v.session)
            assert "builtin" == viewer.session["agent"]
            await viewer.prompt("Fix the typo in greet")
            edit = await viewer.wait_for(lambda v: v.pending_approval(), 10 * UNIT)
            assert "edit" == edit["kind"]
            diff = viewer.entries[edit["tool_call_id"]]["content"][0]
            assert ("diff", "def greet():\n    return 'hello'\n") == (diff["type"], diff["new_text"])
            await viewer.decide(edit["id"], kind_of(edit, "allow_once"))
            command = await viewer.wait_for(
                lambda v: (a := v.pending_approval()) and a["id"] != edit["id"] and a, 10 * UNIT
            )
            assert "execute" == command["kind"]
            await viewer.decide(command["id"], kind_of(command, "reject_once"))
            await viewer.wait_for(lambda v: v.stop_reasons, 10 * UNIT)
            assert any("did not run the command" in t for t in viewer.texts("agent"))
    assert "def greet():\n    return 'hello'\n" == (project / "app.py").read_text()


async def test_stop_aborts_the_model_stream(
    project: Path, tether_env: dict[str, str], relay: str, stopper: list[RcRun]
) -> None:
    """Stop from the device while the model streams: the turn ends as cancelled."""
    async with FakeOpenAI([Turn(text="Thinking very hard", hang=True), Turn(text="ok")]) as fake:
        run = start_rc(project, model_env(tether_env, fake, "openai"), relay, agent="builtin")
        stopper.append(run)
        async with ViewerClient(run.url) as viewer:
            await viewer.prompt("think")
            await viewer.wait_for(lambda v: any("Thinking" in t for t in v.texts("agent")), 10 * UNIT)
            await viewer.cancel()
            await viewer.wait_for(lambda v: v.stop_reasons == ["cancelled"], 10 * UNIT)
            await viewer.prompt("again")
            await viewer.wait_for(lambda v: len(v.stop_reasons) == 2, 10 * UNIT)
            assert ["cancelled", "end_turn"] == viewer.stop_reasons


async def test_rate_limit_is_retried_and_shown(
    project: Path, tether_env: dict[str, str], relay: str, stopper: list[RcRun]
) -> None:
    """A 429 is retried with backoff; the viewer sees the retry and then the answer."""
    script = [Failure(status=429, retry_after="0"), Turn(text="Answer after a retry.")]
    async with FakeAnthropic(script) as fake:
        run = start_rc(project, model_env(tether_env, fake, "anthropic"), relay, agent="builtin")
        stopper.append(run)
        async with ViewerClient(run.url) as viewer:
            await viewer.prompt("hello")
            await viewer.wait_for(lambda v: "Answer after a retry." in v.texts("agent"), 10 * UNIT)
            assert viewer.texts("thought"), "the retry is shown in the transcript"


async def test_a_provider_key_selects_the_builtin_agent(
    project: Path, tether_env: dict[str, str], relay: str, stopper: list[RcRun]
) -> None:
    """With no --agent and no config, a provider key runs the built-in agent: it is named and the model answers."""
    async with FakeOpenAI([Turn(text="Answered by the fake model.")]) as fake:
        run = start_rc(project, model_env(tether_env, fake, "openai"), relay, agent="")
        stopper.append(run)
        async with ViewerClient(run.url) as viewer:
            await viewer.wait_for(lambda v: v.session, 10 * UNIT)
            assert "builtin" == viewer.session["agent"]
            await viewer.prompt("who answers?")
            await viewer.wait_for(lambda v: "Answered by the fake model." in v.texts("agent"), 10 * UNIT)
        [request] = fake.model_requests()
        assert "who answers?" in json.dumps(request.body["messages"])


async def test_without_a_key_the_demo_is_the_default(
    project: Path, tether_env: dict[str, str], relay: str, stopper: list[RcRun]
) -> None:
    """No agent configured and no key: the demo agent runs, with a banner saying how to connect one."""
    env = {k: v for k, v in tether_env.items() if not k.startswith(SCRUBBED)}
    run = start_rc(project, env, relay, agent="")
    stopper.append(run)
    async with ViewerClient(run.url) as viewer:
        await viewer.wait_for(lambda v: v.session, 10 * UNIT)
        assert "demo" == viewer.session["agent"]
    stderr = run.stderr()
    assert "DEMO agent" in stderr and "ANTHROPIC_API_KEY" in stderr
