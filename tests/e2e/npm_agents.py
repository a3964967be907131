"""Real agents from npm for the end-to-end tests: installed once, then run offline through `tether rc`.

Each pinned package (the preset's own pin) is installed once into ``.cache/npm`` in the
repository (or ``TETHER_TEST_NPM_CACHE``), as tests/e2e/test_claude_code.py does for Claude
Code; every agent start then runs offline from that cache, through a private HOME whose
``.npmrc`` points there, so the developer's own settings and credentials stay out.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, RcRun, require, start_rc, stop
from tests.fakes.model_server import ScriptedCall, Turn
from tether.testing import option_id

INSTALL_TIMEOUT = 600  # seconds; a cold install downloads tens of MB
START_WAIT = 120  # units until `tether rc` prints its URL with a real agent (measured: 3-10 s on an idle machine)

_installed: dict[str, str] = {}


def install(package: str, cache: Path, args: tuple[str, ...] = ("--version",)) -> str:
    """Install ``package`` (name@version) into ``cache`` and run it once with ``args``; why it failed, or "" on
    success."""
    # With stdin closed, npx installs the package, runs it once and it exits (or prints its version).
    try:
        result = subprocess.run(
            ["npx", "-y", package, *args],
            env=os.environ
            | {
                "npm_config_cache": str(cache),
                "npm_config_update_notifier": "false",
                "npm_config_prefer_offline": "true",
            },  # a cached pin needs no registry
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=INSTALL_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return f"no answer in {INSTALL_TIMEOUT} s"
    if result.returncode == 0:
        return ""
    lines = result.stderr.decode(errors="replace").splitlines()
    errors = [line for line in lines if line.startswith("npm error")] or lines
    return " | ".join(errors[:4]) or f"exit code {result.returncode}"


def npm_cache(package: str, args: tuple[str, ...] = ("--version",)) -> Path:
    """The npm cache holding ``package``, installed on first use; skips (fails under CI) if it cannot be."""
    require(shutil.which("npx") is not None, "npx (Node.js and npm) is not installed; the agent runs through it")
    configured = os.environ.get("TETHER_TEST_NPM_CACHE")
    cache = Path(configured) if configured else ROOT / ".cache" / "npm"
    if not configured:
        cache.parent.mkdir(exist_ok=True)
        (cache.parent / ".gitignore").write_text("# written by the end-to-end tests of real agents\n*\n")
    if package not in _installed:
        _installed[package] = install(package, cache, args)
    require(not _installed[package], f"cannot install {package} with npx: {_installed[package]}")
    return cache


def private_home(home: Path, cache: Path) -> dict[str, str]:
    """A HOME (and temp folder) of the agent's own, with npx pointed at ``cache`` offline."""
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    # npx reads its cache location from $HOME/.npmrc (tether passes HOME, not npm_config_*).
    (home / ".npmrc").write_text(f"cache={cache}\noffline=true\nupdate-notifier=false\nfund=false\naudit=false\n")
    return {"HOME": str(home), "TMPDIR": str(home / "tmp")}


class AgentRuns:
    """Starts `tether rc --agent NAME`; stops every run and prints the agent logs at teardown."""

    def __init__(self, project: Path, env: dict[str, str], relay: str) -> None:
        self.project, self.env, self.relay = project, env, relay
        self.runs: list[RcRun] = []
        self.fake: Any = None  # the fake model API, whose requests are printed at teardown

    def start(self, agent: str, env: dict[str, str]) -> RcRun:
        # A real agent's first start in a fresh HOME (npx, its own setup) takes seconds; more on a busy machine.
        run = start_rc(self.project, env, self.relay, agent=agent, wait=START_WAIT)
        self.runs.append(run)
        return run

    def close(self) -> None:
        for run in self.runs:
            stop(run.process)
        for request in getattr(self.fake, "requests", []):
            body = request.body.get("contents", request.body) if isinstance(request.body, dict) else request.body
            print(f"--- {request.method} {request.path}: {json.dumps(body)[-1500:]}")
        # Shown by pytest only when the test failed: the agent's stderr (npx and the agent).
        for log in sorted(Path(self.env["TETHER_STATE_DIR"], "logs").glob("agent-*.log")):
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}")


def runs(project: Path, env: dict[str, str], relay: str) -> Iterator[AgentRuns]:
    """Fixture body: an AgentRuns closed at teardown."""
    runner = AgentRuns(project, env, relay)
    yield runner
    runner.close()


def strongest_allow(approval: dict[str, Any]) -> str:
    """The broadest allow option offered: "always" if it is there, else "once"."""
    kinds = [o["kind"] for o in approval["options"]]
    return option_id(approval, "allow_always" if "allow_always" in kinds else "allow_once")


def open_cards(viewer: Any) -> list[dict[str, Any]]:
    """Tool call cards still pending or running."""
    return [c for c in viewer.of_type("tool_call") if c["status"] in ("pending", "in_progress")]


def instruction(text: str) -> tuple[str, str] | None:
    """(file name, project folder) from a prompt "please create file NAME (tether-project=FOLDER)", or None."""
    name = re.search(r"please create file (\S+)", text)
    folder = re.search(r"tether-project=([^\s)]+)", text)
    return (name[1], folder[1]) if name and folder else None


def play(text: str, write: Callable[[str], ScriptedCall]) -> Turn:
    """The fake model's turn for a prompt: a long hang for "think forever"; ``write(path)`` for "please create
    file NAME (tether-project=FOLDER)"."""
    if "think forever" in text:
        return Turn(text="Thinking very hard", hang=True)
    asked = instruction(text)
    if asked is None:
        return Turn(text=f"(fake model: no instruction in {text[-200:]!r})")
    name, folder = asked
    return Turn(text="Creating it.", tool_calls=(write(f"{folder}/{name}"),))


async def denial_holds_then_stop_works(viewer: Any, prompt: str, target: Path, wait: float) -> None:
    """The second turn's write still asks and a denial keeps ``target`` away; then stop cancels a third turn.

    No card is left pending or running after any of the turns.
    """
    await viewer.prompt(prompt)
    second = await viewer.wait_for(lambda v: v.pending_approval() or len(v.stop_reasons) == 2, wait)
    assert isinstance(second, dict), "after the strongest allow, a write to another file must still ask"
    await viewer.decide(second["id"], option_id(second, "reject_once"))
    await viewer.wait_for(lambda v: len(v.stop_reasons) == 2, wait)
    assert not await asyncio.to_thread(target.exists)
    assert [] == open_cards(viewer)
    await viewer.prompt("think forever")
    await viewer.wait_for(lambda v: any("Thinking" in t for t in v.texts("agent")), wait)
    await viewer.cancel()
    await viewer.wait_for(lambda v: len(v.stop_reasons) == 3, wait)
    assert "cancelled" == viewer.stop_reasons[2]
    assert [] == open_cards(viewer)
