"""Shared fixtures: isolated config/state folders, a real relay process, `tether rc` runs.

Every wait is a multiple of UNIT (seconds), which CI can scale with TETHER_TEST_UNIT.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

UNIT = float(os.environ.get("TETHER_TEST_UNIT", "1.0"))
ROOT = Path(__file__).resolve().parent.parent
TETHER = [sys.executable, "-m", "tether.cli.main"]
SCRIPTED_AGENT = f"{sys.executable} {ROOT / 'tests' / 'agents' / 'scripted_agent.py'}"
IN_CI = os.environ.get("CI") == "true"


def require(condition: bool, reason: str) -> None:
    """Skip locally when a system part is missing; fail under CI=true, where it must exist."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a process if it still runs, reap it and close its pipes."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5 * UNIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for pipe in (process.stdin, process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def tether_env(tmp_path: Path) -> dict[str, str]:
    """Environment for tether processes with their own config and state folders."""
    env = dict(os.environ)
    env["TETHER_CONFIG_DIR"] = str(tmp_path / "config")
    env["TETHER_STATE_DIR"] = str(tmp_path / "state")
    return env


@pytest.fixture
def project(tmp_path: Path, tether_env: dict[str, str]) -> Path:
    """A trusted, empty project folder."""
    folder = tmp_path / "project"
    folder.mkdir()
    subprocess.run([*TETHER, "trust", str(folder)], env=tether_env, check=True, capture_output=True)
    return folder


@pytest.fixture
def relay(tether_env: dict[str, str]) -> Iterator[str]:
    """A standalone `tether relay serve` process on 127.0.0.1; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [*TETHER, "relay", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=tether_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10 * UNIT
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=UNIT).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            error = process.stderr.read().decode() if process.stderr else ""
            stop(process)
            raise RuntimeError(f"relay did not start: {error}")
        time.sleep(0.05)
    yield url
    stop(process)


@dataclass
class RcRun:
    """A running `tether rc --json`."""

    process: subprocess.Popen[bytes]
    url: str
    session_id: str

    def stderr(self) -> str:
        """Stop the process and return what it wrote to stderr."""
        self.process.kill()
        self.process.wait()
        assert self.process.stderr is not None
        text = self.process.stderr.read().decode(errors="replace")
        stop(self.process)
        return text


def start_rc(project: Path, env: dict[str, str], relay: str, agent: str = SCRIPTED_AGENT) -> RcRun:
    """Start `tether rc --json` in ``project`` and read its one JSON line."""
    process = subprocess.Popen(
        [*TETHER, "rc", *(["--relay", relay] if relay else []), *(["--agent", agent] if agent else []), "--json"],
        cwd=project,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        assert process.stderr is not None
        process.wait(5 * UNIT)
        error = process.stderr.read().decode()
        stop(process)
        raise AssertionError(f"tether rc printed nothing: {error}")
    data = json.loads(line)
    return RcRun(process=process, url=data["url"], session_id=data["session_id"])


@pytest.fixture
def rc(project: Path, tether_env: dict[str, str], relay: str) -> Iterator[RcRun]:
    """`tether rc` with the scripted test agent, against the relay fixture."""
    run = start_rc(project, tether_env, relay)
    yield run
    stop(run.process)


def chromium_path() -> str | None:
    """Debian's chromium, never a downloaded browser."""
    return shutil.which("chromium") or (None if not Path("/usr/bin/chromium").exists() else "/usr/bin/chromium")
