"""Workspace trust asked in a real terminal (a pty), `tether trust` warnings, and skipped permissions refused."""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, TETHER, UNIT, stop
from tether.config import Config

PROBE_AGENT = ROOT / "tests" / "agents" / "probe_agent.py"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Pty:
    """`tether` on a pseudo-terminal: what a user types and sees."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 300, 0, 0))  # wide: no wrapped lines
        self.process = subprocess.Popen([*TETHER, *args], cwd=cwd, env=env | {"TERM": "xterm"},
                                        stdin=slave, stdout=slave, stderr=slave, close_fds=True)  # fmt: skip
        os.close(slave)
        self.seen = ""

    def expect(self, marker: str, timeout: float = 30 * UNIT, times: int = 1) -> str:
        """Read until ``marker`` shows (``times`` times in all); fails with all seen after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.seen.count(marker) < times:
            ready, _, _ = select.select([self.master], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                raise AssertionError(f"no {marker!r} in time; seen:\n{self.seen}")
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: the process closed the terminal
                data = b""
            if not data:
                raise AssertionError(f"output ended without {marker!r}; seen:\n{self.seen}")
            self.seen += ANSI.sub("", data.decode(errors="replace")).replace("\r", "")
        return self.seen

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def close(self) -> int:
        stop(self.process)
        os.close(self.master)
        return int(self.process.returncode)


@pytest.fixture
def pty_runs() -> Iterator[list[Pty]]:
    runs: list[Pty] = []
    yield runs
    for run in runs:
        run.close()


def marking_agent(marker: Path) -> str:
    """An agent command that leaves ``marker`` behind the moment it starts."""
    return f"sh -c 'touch {marker}; exec {sys.executable} {PROBE_AGENT}'"


def trusted(env: dict[str, str]) -> list[str]:
    listed = subprocess.run([*TETHER, "trust", "--list"], env=env, capture_output=True, check=True, timeout=30 * UNIT)
    return listed.stdout.decode().split()


def test_first_run_asks_before_anything_starts(tmp_path: Path, tether_env: dict[str, str], pty_runs: list[Pty]) -> None:
    """In an untrusted folder `tether` asks in the terminal; the agent starts only after "y", which trusts it."""
    folder, marker = tmp_path / "cloned", tmp_path / "agent-started"
    folder.mkdir()
    run = Pty(["--agent", marking_agent(marker)], folder, tether_env)
    pty_runs.append(run)
    run.expect("[y/N]")
    assert f"Do you trust the files in {folder}?" in run.seen
    assert not marker.exists()  # nothing of the folder is run before the answer
    run.type("y")
    run.expect("Type a prompt")
    assert f"Trusted {folder}." in run.seen
    assert marker.exists()
    assert [str(folder)] == trusted(tether_env)


def test_no_keeps_remote_control_off(tmp_path: Path, tether_env: dict[str, str], pty_runs: list[Pty]) -> None:
    """Answered "n": the local session runs, /remote is refused, the folder is not added to the trust list."""
    folder = tmp_path / "cloned"
    folder.mkdir()
    run = Pty(["--agent", f"{sys.executable} {PROBE_AGENT}"], folder, tether_env)
    pty_runs.append(run)
    run.expect("[y/N]")
    run.type("n")
    run.expect("Type a prompt")
    assert "Not trusted: Remote Control stays off here" in run.seen
    run.type("/remote")
    run.expect("is not a trusted folder, so Remote Control is not available here")
    assert [] == trusted(tether_env)


@pytest.mark.parametrize("command", [["--remote"], ["rc"]])
def test_remote_refused_after_no(
    command: list[str], tmp_path: Path, tether_env: dict[str, str], pty_runs: list[Pty]
) -> None:
    """`tether --remote` (and `tether rc`, on a terminal too) answered "n" stops with exit 2 before the agent starts."""
    folder, marker = tmp_path / "cloned", tmp_path / "agent-started"
    folder.mkdir()
    run = Pty([*command, "--agent", marking_agent(marker)], folder, tether_env)
    pty_runs.append(run)
    run.expect("[y/N]")
    run.type("n")
    run.expect("Run `tether trust")
    assert 2 == run.process.wait(30 * UNIT)
    assert not marker.exists()


def tether(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TETHER, *args], cwd=cwd, env=env | {"COLUMNS": "300"}, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60 * UNIT)  # fmt: skip


def test_trust_warns_for_root_and_home(tmp_path: Path, tether_env: dict[str, str]) -> None:
    """`tether trust /` and `tether trust ~` trust, with a warning that everything below is trusted."""
    home = tmp_path / "home"
    home.mkdir()
    env = tether_env | {"HOME": str(home)}
    for folder in ("/", str(home)):
        result = tether(["trust", folder], tmp_path, env)
        assert 0 == result.returncode
        assert f"Trusted {folder}\n" == result.stdout
        assert result.stderr.startswith(f"Warning: {folder} holds every project below it"), result.stderr
    quiet = tmp_path / "project"
    quiet.mkdir()
    assert "" == tether(["trust", str(quiet)], tmp_path, env).stderr


def test_trust_a_missing_folder(tmp_path: Path, tether_env: dict[str, str]) -> None:
    """`tether trust /nonexistent` says the folder does not exist, and nothing about trusting first."""
    result = tether(["trust", "/nonexistent"], tmp_path, tether_env)
    assert 2 == result.returncode
    assert "Error: /nonexistent does not exist" in result.stderr
    assert "Trust the folder first" not in result.stderr
    assert [] == trusted(tether_env)


@pytest.mark.parametrize(
    ("args", "config", "how"),
    [
        (["rc"], False, "tether rc"),
        (["--remote"], False, "--remote"),
        ([], True, "remote.auto_start"),
    ],
)
def test_skipped_permissions_refused_with_remote_control(
    project: Path, tether_env: dict[str, str], args: list[str], config: bool, how: str
) -> None:
    """--dangerously-skip-permissions with Remote Control on, however it is on, exits 2 with a clear error."""
    if config:
        auto_start(tether_env)
    result = tether([*args, "--agent", "demo", "--dangerously-skip-permissions"], project, tether_env)
    assert 2 == result.returncode, result.stdout + result.stderr
    assert f"--dangerously-skip-permissions cannot be used with Remote Control ({how} turns it on)" in result.stderr
    assert "" == result.stdout


def typed(folder: Path, env: dict[str, str], lines: bytes, *args: str) -> tuple[int, str]:
    """`tether ARGS --agent probe_agent` in ``folder`` with ``lines`` on stdin (not a terminal): exit status, output."""
    process = subprocess.Popen([*TETHER, *args, "--agent", f"{sys.executable} {PROBE_AGENT}"], cwd=folder,
                               env=env | {"COLUMNS": "300"}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)  # fmt: skip
    try:
        out, _ = process.communicate(lines, timeout=60 * UNIT)
    finally:
        stop(process)
    return int(process.returncode), out.decode()


def auto_start(env: dict[str, str]) -> None:
    Config(Path(env["TETHER_CONFIG_DIR"]) / "config.toml").set("remote.auto_start", "true")


def test_auto_start_in_an_untrusted_folder_stays_local(tmp_path: Path, tether_env: dict[str, str]) -> None:
    """remote.auto_start in an untrusted folder: the local session runs and says Remote Control stays off."""
    auto_start(tether_env)
    folder = tmp_path / "cloned"
    folder.mkdir()
    code, out = typed(folder, tether_env, b"/quit\n")
    assert "remote.auto_start: Remote Control stays off, this folder is not trusted." in out
    assert 0 == code


def test_auto_start_in_a_trusted_folder(project: Path, tether_env: dict[str, str]) -> None:
    """remote.auto_start in a trusted folder: the interactive session starts with Remote Control on."""
    auto_start(tether_env)
    _, out = typed(project, tether_env, b"/quit\n")
    assert "Remote Control is on." in out, out


def test_remote_command_refused_with_skipped_permissions(project: Path, tether_env: dict[str, str]) -> None:
    """/remote in a local session started with --dangerously-skip-permissions is refused; the session goes on."""
    _, text = typed(project, tether_env, b"/remote\nanything\n/quit\n", "--dangerously-skip-permissions")
    assert "--dangerously-skip-permissions cannot be used with Remote Control" in text, text
    assert "Remote Control is on" not in text
    assert "you › anything" in text  # the local session went on
