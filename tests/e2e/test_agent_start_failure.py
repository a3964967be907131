"""An agent that fails to start: tether shows the last lines of its own log, as text."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import TETHER, UNIT
from tether.host.agent_process import LOG_TAIL_LINES, log_tail


def test_failed_start_shows_the_agents_last_log_lines(project: Path, tether_env: dict[str, str]) -> None:
    """The agent's own words (markup-like brackets kept) follow the error, not only "Connection lost"."""
    agent = "sh -c 'echo starting >&2; echo \"[error] ANTHROPIC_API_KEY is not set [/]\" >&2; exit 1'"
    result = subprocess.run([*TETHER, "--agent", agent], cwd=project, env=tether_env | {"COLUMNS": "300"},
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60 * UNIT)  # fmt: skip
    assert 2 == result.returncode
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Error: the agent 'sh' failed:") and "the last lines of its log" in lines[0], lines
    assert ["  starting", "  [error] ANTHROPIC_API_KEY is not set [/]"] == lines[1:3]


def test_log_tail_is_bounded_and_visible(tmp_path: Path) -> None:
    """Only the last lines, from the end of a big log, with control characters shown rather than obeyed."""
    log = tmp_path / "agent.log"
    log.write_text("".join(f"line {i}\n" for i in range(10000)) + "\x1b[2Jcleared\n")
    tail = log_tail(log)
    assert LOG_TAIL_LINES == len(tail)
    assert "line 9993" == tail[0]
    assert "\x1b" not in tail[-1] and "cleared" in tail[-1]
    assert [] == log_tail(tmp_path / "missing.log")
