"""What --sandbox costs: starting one of the agent's commands, and one request through the egress proxy.

For each mechanism that works here (none, bubblewrap, Landlock): the median time to run
``/bin/true`` as a ``terminal/create`` command (Terminals, as the host runs them), and the
median time of an HTTP request from a confined process to a server on 127.0.0.1 through the
egress proxy, against the same request made directly. Run:
``.venv/bin/python benchmarks/sandbox_cost.py`` (not part of the tests; figures in the README).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tether.host.sandbox_run import Sandbox, choose
from tether.host.terminals import Terminals

RUNS = 30
REQUESTS = 200
CLIENT = """\
import os, sys, time, urllib.request
url, count = os.environ["ANTHROPIC_BASE_URL"], int(sys.argv[1])
times = []
for _ in range(count):
    start = time.perf_counter()
    with urllib.request.urlopen(url + "/ping") as response:
        response.read()
    times.append(time.perf_counter() - start)
times.sort()
print(times[len(times) // 2] * 1000)
"""


class Ping(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "4")
        self.end_headers()
        self.wfile.write(b"pong")

    def log_message(self, *args: Any) -> None:
        pass


async def command_ms(project: Path, sandbox: Sandbox | None) -> float:
    terminals = Terminals(project, sandbox=sandbox)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(project)}
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        terminal = await terminals.create("/bin/true", [], env, project, None)
        await terminals.wait(terminal.id)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


async def request_ms(project: Path, sandbox: Sandbox | None, base_url: str) -> float:
    env = {"PATH": os.environ["PATH"], "HOME": str(project), "ANTHROPIC_BASE_URL": base_url}
    argv = [sys.executable, "-c", CLIENT, str(REQUESTS)]
    pipes: dict[str, Any] = {"stdout": asyncio.subprocess.PIPE}
    if sandbox is None:
        process = await asyncio.create_subprocess_exec(*argv, env=env, cwd=project, **pipes)
    else:
        process = await sandbox.spawn(argv, env, **pipes)
    out, _ = await process.communicate()
    return float(out.decode().strip())


async def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Ping)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        print(f"{'mechanism':<10} {'command start (median ms)':>26} {'HTTP request via egress (median ms)':>36}")
        for name in ("none", "bwrap", "landlock"):
            if name != "none" and choose(name)[0] != name:
                print(f"{name:<10} not available here: {choose(name)[1]}")
                continue
            sandbox = None if name == "none" else Sandbox(project, {"HOME": folder}, name)
            command = await command_ms(project, sandbox)
            request = await request_ms(project, sandbox, base_url)
            print(f"{name:<10} {command:>26.1f} {request:>36.2f}")
    server.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
