"""The built-in agent as a real subprocess, against fake model APIs speaking the real HTTP streaming formats.

Each test starts ``python -m tether.agents.builtin`` with its provider's base URL pointed
at a fake server on 127.0.0.1, and drives it with a naive ACP client serving ``fs/*`` and
``terminal/*`` on a temporary project folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from acp import PROTOCOL_VERSION, text_block
from acp.core import ClientSideConnection
from acp.schema import PromptResponse

from tests.fakes.acp_client import NaiveClient, spawn_agent
from tests.fakes.fake_anthropic import FakeAnthropic
from tests.fakes.fake_openai import FakeOpenAI
from tests.fakes.model_server import Failure, FakeModelServer, Turn, call

UNIT = float(os.environ.get("TETHER_TEST_UNIT", "1.0"))  # seconds; every wait is a multiple
AGENT = [sys.executable, "-m", "tether.agents.builtin"]
FAKES: dict[str, type[FakeModelServer]] = {"anthropic": FakeAnthropic, "openai": FakeOpenAI}


@dataclass
class Run:
    """A connected agent with one session in ``project``."""

    client: NaiveClient
    conn: ClientSideConnection
    process: asyncio.subprocess.Process
    session_id: str
    project: Path
    stderr: Path

    async def prompt(self, text: str) -> PromptResponse:
        return await asyncio.wait_for(
            self.conn.prompt(session_id=self.session_id, prompt=[text_block(text)]), 10 * UNIT
        )


def clean_env() -> dict[str, str]:
    """This environment without any model API or agent settings of the developer's."""
    prefixes = ("ANTHROPIC_", "OPENAI_", "TETHER_AGENT_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


@contextlib.asynccontextmanager
async def agent(
    tmp_path: Path,
    provider: str,
    base_url: str | None,
    *,
    answers: Sequence[str] = (),
    args: Sequence[str] = (),
    key: str | None = "test-key",
) -> AsyncIterator[Run]:
    """Start the agent for ``provider`` against ``base_url`` and open a session."""
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    env = clean_env()
    prefix = provider.upper()
    if base_url is not None:
        env[f"{prefix}_BASE_URL"] = base_url
    if key is not None:
        env[f"{prefix}_API_KEY"] = key
    client = NaiveClient(project, answers)
    stderr = tmp_path / "agent.stderr"
    argv = [*AGENT, "--provider", provider, "--model", "test-model", *args]
    with stderr.open("wb") as sink:
        async with spawn_agent(argv, env, client, sink) as (conn, process):
            await asyncio.wait_for(
                conn.initialize(protocol_version=PROTOCOL_VERSION, client_capabilities=client.capabilities()),
                10 * UNIT,
            )
            session = await asyncio.wait_for(conn.new_session(cwd=str(project), mcp_servers=[]), 5 * UNIT)
            try:
                yield Run(client, conn, process, session.session_id, project, stderr)
            finally:
                print(stderr.read_text(errors="replace"))  # shown by pytest when the test fails


def tool_results(request_body: dict[str, Any], provider: str) -> list[str]:
    """The tool results in a request, as the model reads them."""
    if provider == "openai":
        return [m["content"] for m in request_body["messages"] if m["role"] == "tool"]
    return [
        block["content"]
        for message in request_body["messages"]
        if isinstance(message["content"], list)
        for block in message["content"]
        if block["type"] == "tool_result"
    ]


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
async def test_multi_step_task(tmp_path: Path, provider: str) -> None:
    """Plan, read, edit with a diff (approved), run a command (approved), answer: all through ACP."""
    script = [
        Turn(
            text="I'll fix the typo.",
            tool_calls=(
                call("update_plan", entries=[{"content": "Fix greet", "status": "in_progress"}]),
                call("read_file", path="app.py"),
            ),
        ),
        Turn(tool_calls=(call("edit_file", path="app.py", old_string="'helo'", new_string="'hello'"),)),
        Turn(tool_calls=(call("run_command", command="python3 -c 'import app; print(app.greet())'"),)),
        Turn(text="Fixed: greet() now says hello."),
    ]
    async with FAKES[provider](script) as fake, agent(tmp_path, provider, fake.base_url) as run:
        (run.project / "app.py").write_text("def greet():\n    return 'helo'\n")
        response = await run.prompt("Fix the typo in greet")
        requests = fake.model_requests()

    client = run.client
    assert "end_turn" == response.stop_reason
    assert "def greet():\n    return 'hello'\n" == (run.project / "app.py").read_text()
    assert "I'll fix the typo.Fixed: greet() now says hello." == client.text()
    assert [["Fix greet"]] == [[e.content for e in u.entries] for u in client.of_kind("plan")]
    calls = list(client.tool_calls().values())
    assert [("read", "completed"), ("edit", "completed"), ("execute", "completed")] == [
        (c["kind"], c["status"]) for c in calls
    ]
    diff = calls[1]["content"][0]
    assert ("diff", "def greet():\n    return 'helo'\n", "def greet():\n    return 'hello'\n") == (
        diff["type"],
        diff["old_text"],
        diff["new_text"],
    )
    assert "terminal" == calls[2]["content"][0]["type"]
    assert [("edit", 4), ("execute", 4)] == [(t.kind, len(o)) for t, o in client.permission_requests]
    assert {"allow_once", "allow_always", "reject_once", "reject_always"} == {
        o.kind for o in client.permission_requests[0][1]
    }
    assert 4 == len(requests)
    assert "1\tdef greet():\n2\t    return 'helo'" == tool_results(requests[1].body, provider)[-1]
    assert "Exit code: 0\nhello\n" == tool_results(requests[3].body, provider)[-1]
    usage = client.of_kind("usage_update")
    assert 4 == len(usage) and all(u.used > 0 for u in usage)


async def test_denied_command_is_reported_to_the_model(tmp_path: Path) -> None:
    """A rejected command never runs; the model reads the denial and answers the user."""
    script = [
        Turn(tool_calls=(call("run_command", command="rm -rf build"),)),
        Turn(text="Understood, I will leave the build folder alone."),
    ]
    async with FakeOpenAI(script) as fake, agent(tmp_path, "openai", fake.base_url, answers=["reject_once"]) as run:
        (run.project / "build").mkdir()
        response = await run.prompt("Clean up")
        requests = fake.model_requests()

    assert "end_turn" == response.stop_reason
    assert [] == run.client.commands
    assert (run.project / "build").is_dir()
    (only_call,) = run.client.tool_calls().values()
    assert "failed" == only_call["status"]
    assert tool_results(requests[1].body, "openai")[-1].startswith("Error: The user denied permission")
    assert "Understood, I will leave the build folder alone." == run.client.text()


async def test_always_allow_is_remembered_for_the_session(tmp_path: Path) -> None:
    """After "always allow" for commands, the next command runs without asking again."""
    script = [
        Turn(tool_calls=(call("run_command", command="echo one"),)),
        Turn(tool_calls=(call("run_command", command="echo two"),)),
        Turn(text="Both ran."),
    ]
    async with (
        FakeAnthropic(script) as fake,
        agent(tmp_path, "anthropic", fake.base_url, answers=["allow_always"]) as run,
    ):
        await run.prompt("Run both")
        requests = fake.model_requests()

    assert 1 == len(run.client.permission_requests)
    assert ["Exit code: 0\none\n", "Exit code: 0\ntwo\n"] == tool_results(requests[2].body, "anthropic")


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
async def test_cancel_aborts_the_model_stream(tmp_path: Path, provider: str) -> None:
    """session/cancel in the middle of a stream closes it and ends the turn as cancelled; the next turn works."""
    fake = FAKES[provider]([Turn(text="Let me think about this at some length", hang=True), Turn(text="Hi again")])
    async with fake, agent(tmp_path, provider, fake.base_url) as run:
        turn = asyncio.create_task(run.prompt("Think"))
        async with asyncio.timeout(5 * UNIT):
            await run.client.wait_for(lambda: "length" in run.client.text())
        await run.conn.cancel(session_id=run.session_id)
        response = await asyncio.wait_for(turn, 2 * UNIT)
        async with asyncio.timeout(2 * UNIT):
            await fake.wait_until(lambda: fake.disconnects == 1)
        again = await run.prompt("Hello?")
        requests = fake.model_requests()

    assert ("cancelled", "end_turn") == (response.stop_reason, again.stop_reason)
    assert "Let me think about this at some length" in str(requests[1].body["messages"])


async def test_cancel_kills_a_running_command(tmp_path: Path) -> None:
    """Stop during a long command kills it through terminal/kill and ends the turn as cancelled."""
    script = [Turn(tool_calls=(call("run_command", command="sleep 30"),)), Turn(text="Stopped, as asked.")]
    async with FakeAnthropic(script) as fake, agent(tmp_path, "anthropic", fake.base_url) as run:
        turn = asyncio.create_task(run.prompt("Wait a while"))
        async with asyncio.timeout(5 * UNIT):
            await run.client.wait_for(lambda: bool(run.client.terminals))
        await run.conn.cancel(session_id=run.session_id)
        response = await asyncio.wait_for(turn, 2 * UNIT)
        (terminal,) = run.client.terminals.values()
        await asyncio.wait_for(terminal.done.wait(), 2 * UNIT)
        again = await run.prompt("Why did it stop?")
        requests = fake.model_requests()

    assert ("cancelled", ["term-1"], -9) == (response.stop_reason, run.client.killed, terminal.process.returncode)
    (command_call,) = run.client.tool_calls().values()
    assert "failed" == command_call["status"]
    assert ("end_turn", ["Stopped by the user."]) == (again.stop_reason, tool_results(requests[1].body, "anthropic"))


async def test_cancel_while_waiting_for_approval(tmp_path: Path) -> None:
    """Stop while an approval is pending ends the turn at once; the late answer is ignored; nothing ran."""
    script = [Turn(tool_calls=(call("run_command", command="touch made"),)), Turn(text="Fine.")]
    async with FakeOpenAI(script) as fake, agent(tmp_path, "openai", fake.base_url, answers=["hold"]) as run:
        turn = asyncio.create_task(run.prompt("Make it"))
        async with asyncio.timeout(5 * UNIT):
            await run.client.wait_for(lambda: bool(run.client.permission_requests))
        await run.conn.cancel(session_id=run.session_id)
        response = await asyncio.wait_for(turn, 2 * UNIT)
        run.client.release_permissions()
        again = await run.prompt("Never mind")
        requests = fake.model_requests()

    assert ("cancelled", "end_turn", []) == (response.stop_reason, again.stop_reason, run.client.commands)
    assert not (run.project / "made").exists()
    assert ["Error: Stopped by the user."] == tool_results(requests[1].body, "openai")


@pytest.mark.parametrize(
    ("provider", "failure", "notice"),
    [
        ("anthropic", Failure(429, retry_after="0"), "is rate limited (HTTP 429)"),
        ("openai", Failure(429, retry_after="0"), "is rate limited (HTTP 429)"),
        ("anthropic", Failure(529, message="Overloaded", in_stream=True), "overloaded or failing"),
    ],
)
async def test_rate_limit_then_success(tmp_path: Path, provider: str, failure: Failure, notice: str) -> None:
    """A 429 (or an overloaded stream) is retried after the server's wait, shown as a thought, then succeeds."""
    async with FAKES[provider]([failure, Turn(text="Done.")]) as fake, agent(tmp_path, provider, fake.base_url) as run:
        response = await run.prompt("Go")
        requests = fake.model_requests()

    assert ("end_turn", "Done.", 2) == (response.stop_reason, run.client.text(), len(requests))
    thought = run.client.text("agent_thought_chunk")
    assert notice in thought and "Retrying in" in thought


async def test_long_conversation_is_trimmed_to_the_context_window(tmp_path: Path) -> None:
    """Old tool output is cut (and said so) once the conversation outgrows the window; the newest stays whole."""
    reads = [Turn(tool_calls=(call("read_file", path=f"part{i}.txt"),)) for i in range(6)]
    script = [*reads, Turn(text="Read them all.")]
    async with (
        FakeAnthropic(script) as fake,
        agent(tmp_path, "anthropic", fake.base_url, args=["--context-window", "8000", "--max-tokens", "500"]) as run,
    ):
        for i in range(6):
            (run.project / f"part{i}.txt").write_text("".join(f"part {i} line {n}\n" for n in range(400)))
        response = await run.prompt("Read every part")
        requests = fake.model_requests()

    assert "end_turn" == response.stop_reason
    assert "Context: trimmed" in run.client.text("agent_thought_chunk")
    last = str(requests[-1].body["messages"])
    assert "Read every part" in last and "earlier messages of this conversation" in last
    results = tool_results(requests[-1].body, "anthropic")
    assert 2 <= sum("trimmed to save context" in r for r in results)
    newest = results[-1].splitlines()
    assert (400, "400\tpart 5 line 399") == (len(newest), newest[-1])


async def test_missing_key_names_the_variable(tmp_path: Path) -> None:
    """Without a key the agent still runs, and each prompt says which variable to set."""
    async with agent(tmp_path, "anthropic", None, key=None) as run:
        response = await run.prompt("Hello")

    assert "end_turn" == response.stop_reason
    assert "set ANTHROPIC_API_KEY" in run.client.text()


async def test_unknown_model_is_one_readable_line(tmp_path: Path) -> None:
    """A model the server does not serve gives one line naming it and the flag, and no traceback."""
    async with FakeOpenAI([], models=["served-model"]) as fake, agent(tmp_path, "openai", fake.base_url) as run:
        response = await run.prompt("Hello")

    text = run.client.text()
    assert ("end_turn", 1) == (response.stop_reason, len(text.splitlines()))
    assert "does not know model 'test-model' (HTTP 404)" in text and "--model" in text
    assert "Traceback" not in run.stderr.read_text()


async def test_unreachable_endpoint_is_one_readable_line(tmp_path: Path) -> None:
    """A base URL where nothing listens gives one line naming the URL and the variable, at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with agent(tmp_path, "anthropic", url) as run:
        response = await run.prompt("Hello")

    text = run.client.text()
    assert ("end_turn", 1) == (response.stop_reason, len(text.splitlines()))
    assert f"Cannot reach the model API at {url}" in text and "ANTHROPIC_BASE_URL" in text
    assert "Traceback" not in run.stderr.read_text()
