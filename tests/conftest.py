"""Shared fixtures: isolated config/state folders, a real relay process, `tether rc` runs.

Every wait is a multiple of UNIT (seconds), which CI can scale with TETHER_TEST_UNIT.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from playwright.async_api import Browser

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
    """A TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def tether_env(tmp_path: Path) -> dict[str, str]:
    """Environment for tether processes with their own config and state folders."""
    env = dict(os.environ)
    env["TETHER_CONFIG_DIR"] = str(tmp_path / "config")
    env["TETHER_STATE_DIR"] = str(tmp_path / "state")
    env["TETHER_KEYRING"] = "0"  # device keys in the test's state folder, never the user's keyring
    # Rich wraps at the terminal width (80 without one): a long temporary path would split the lines tests read.
    env["COLUMNS"] = "1000"
    return env


@pytest.fixture
def project(tmp_path: Path, tether_env: dict[str, str]) -> Path:
    """A trusted, empty project folder."""
    folder = tmp_path / "project"
    folder.mkdir()
    subprocess.run([*TETHER, "trust", str(folder)], env=tether_env, check=True, capture_output=True)
    return folder


def start_relay(env: dict[str, str], port: int, stderr: int = subprocess.PIPE) -> subprocess.Popen[bytes]:
    """`tether relay serve` on 127.0.0.1:``port``, once its /healthz answers; RuntimeError (with its stderr) if not."""
    process = subprocess.Popen(
        [*TETHER, "relay", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    deadline = time.monotonic() + 10 * UNIT
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=UNIT).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            error = process.stderr.read().decode() if process.stderr else ""
            stop(process)
            raise RuntimeError(f"relay did not start: {error}")
        time.sleep(0.05)


@pytest.fixture
def relay(tether_env: dict[str, str]) -> Iterator[str]:
    """A standalone `tether relay serve` process on 127.0.0.1; yields its URL."""
    port = free_port()
    process = start_relay(tether_env, port)
    url = f"http://127.0.0.1:{port}"
    log_in(url, tether_env)
    yield url
    stop(process)


def log_in(relay: str, env: dict[str, str], account: str = "tester") -> None:
    """Register this test's machine with a relay on 127.0.0.1: an invite from the relay's account store, then
    the real login over HTTP, as `tether relay invite` and `tether login` do (tests/e2e/test_login.py runs the
    commands themselves; here they run in this process, which saves two interpreter starts per test)."""
    from tether.host.device import Devices, login
    from tether.relay.accounts import AccountStore

    state = Path(env["TETHER_STATE_DIR"])
    store = AccountStore(f"sqlite:///{state / 'relay.db'}")
    try:
        store.migrate()
        code = store.invite(account, time.time(), os.urandom, 3600)
    finally:
        store.close()
    login(f"{relay}/login#{code}", Devices(state, use_keyring=env.get("TETHER_KEYRING") != "0"))


class Lines:
    """The lines a process prints, read with select() so that every wait on them has a deadline.

    Reads the pipe's file descriptor directly: the stream object's own buffer is never used.
    A wait that runs out fails with every line seen so far.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self.seen: list[str] = []
        self._fd = stream.fileno()
        self._buffer = b""
        self._ended = False

    def next(self, timeout: float, waiting_for: str = "a line") -> str | None:
        """The next line (also kept in ``seen``), None at the end of output."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer and not self._ended:
            ready, _, _ = select.select([self._fd], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                raise AssertionError(f"no {waiting_for} in time; seen so far:\n" + "".join(self.seen))
            data = os.read(self._fd, 65536)
            self._ended = not data
            self._buffer += data
        line, newline, self._buffer = self._buffer.partition(b"\n")
        if not (line or newline):
            return None
        self.seen.append((line + newline).decode(errors="replace"))
        return self.seen[-1]

    def until(self, marker: str, timeout: float) -> None:
        """Read lines until one contains ``marker``; fails at the end of output or after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while (line := self.next(max(deadline - time.monotonic(), 0), repr(marker))) is not None:
            if marker in line:
                return
        raise AssertionError(f"output ended without {marker!r}:\n" + "".join(self.seen))

    def rest(self, timeout: float) -> None:
        """Read up to the end of output, for at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.next(max(deadline - time.monotonic(), 0), "end of output") is not None:
            pass


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


def start_rc(
    project: Path, env: dict[str, str], relay: str, agent: str = SCRIPTED_AGENT, accept_device: bool = True,
    wait: float = 30.0,
) -> RcRun:  # fmt: skip
    """Start `tether rc --json` in ``project`` and read its one JSON line (within ``wait`` units).

    ``accept_device``: admit the test's viewer without the pairing question (tests of pairing itself say False).
    """
    process = subprocess.Popen(
        [*TETHER, "rc", *(["--relay", relay] if relay else []), *(["--agent", agent] if agent else []), "--json",
         *(["--accept-device"] if accept_device else [])],
        cwd=project,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        line = Lines(process.stdout).next(wait * UNIT, "JSON line")
    except AssertionError:
        line = None
    if not line:
        process.kill()
        process.wait()
        error = process.stderr.read().decode(errors="replace")
        stop(process)
        raise AssertionError(f"tether rc printed no JSON line within {wait * UNIT:g} s: {error}")
    data = json.loads(line)
    return RcRun(process=process, url=data["url"], session_id=data["session_id"])


@pytest.fixture
def rc(project: Path, tether_env: dict[str, str], relay: str) -> Iterator[RcRun]:
    """`tether rc` with the scripted test agent, against the relay fixture."""
    run = start_rc(project, tether_env, relay)
    yield run
    stop(run.process)


# Headless in a container: no sandbox (no user namespaces), no GPU, and no traffic of its own.
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update")


def chromium_path() -> str:
    """Debian's chromium, never a downloaded browser; skips the test without it (fails under CI=true)."""
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    require(path is not None, "Debian's chromium is not installed (apt-get install chromium)")
    assert path is not None
    return path


@contextlib.asynccontextmanager
async def chromium(*extra_args: str) -> AsyncIterator[Browser]:
    """Debian's headless Chromium driven by Playwright, for every browser test (see chromium_path)."""
    path = chromium_path()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=path, args=[*CHROMIUM_ARGS, *extra_args])
        try:
            yield browser
        finally:
            await browser.close()
