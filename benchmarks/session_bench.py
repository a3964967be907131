"""Whole-path benchmarks: `tether rc` + the scripted ACP agent + a scripted viewer, on 127.0.0.1.

Measures the time from a viewer's prompt to the end of the agent's turn (prompt -> agent ->
streamed reply -> viewer), and from SIGHUP of the host to the viewer seeing the session
closed. Run: ``.venv/bin/python benchmarks/session_bench.py`` (part of ``make bench``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tether.host.trust import TrustStore
from tether.testing import ViewerClient

ROOT = Path(__file__).resolve().parent.parent
AGENT = f"{sys.executable} {ROOT / 'tests' / 'agents' / 'scripted_agent.py'}"
PROMPTS = 50
ENDS = 5


def start(folder: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tether.cli.main", "rc", "--agent", AGENT, "--json"],
        cwd=folder,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    return process, json.loads(process.stdout.readline())["url"]


async def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        env = dict(os.environ, TETHER_STATE_DIR=str(base / "state"), TETHER_CONFIG_DIR=str(base / "config"))
        folder = base / "project"
        folder.mkdir()
        TrustStore(base / "state" / "trust.json").trust(folder)

        process, url = start(folder, env)
        rounds = []
        async with ViewerClient(url) as viewer:
            await viewer.wait_for(lambda v: v.session)
            for index in range(PROMPTS):
                started = time.perf_counter()
                await viewer.prompt(f"say reply number {index} with a few more words")
                await viewer.wait_for(lambda v, n=index + 1: len(v.stop_reasons) == n)
                rounds.append((time.perf_counter() - started) * 1000)
        process.terminate()
        process.wait()
        print(f"prompt -> reply -> end of turn: median {statistics.median(rounds):.1f} ms, "
              f"p90 {statistics.quantiles(rounds, n=10)[-1]:.1f} ms over {PROMPTS} prompts")  # fmt: skip

        ends = []
        for _ in range(ENDS):
            process, url = start(folder, env)
            async with ViewerClient(url) as viewer:
                await viewer.wait_for(lambda v: v.session)
                started = time.perf_counter()
                process.send_signal(signal.SIGHUP)
                await viewer.wait_for(lambda v: v.closed)
                ends.append((time.perf_counter() - started) * 1000)
            process.wait()
        print(f"SIGHUP of the host -> viewer closed: median {statistics.median(ends):.0f} ms, max {max(ends):.0f} ms")


if __name__ == "__main__":
    asyncio.run(main())
