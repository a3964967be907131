"""`tether --sandbox` against real escape attempts, each also run without it (so a blocked probe proves the sandbox).

The agent is tests/agents/probe_agent.py, started by tether as any agent is; it tries,
natively in its own process, to write outside the project, read ~/.ssh, connect to a TCP
server and a Unix socket of the host, find a secret of the host's environment, and reach
its model API (the one allowed way out, through the host's egress proxy).
"""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI, ROOT, TETHER, UNIT, Lines, require, stop
from tether.config import Config
from tether.host import sandbox_run

PROBE_AGENT = ROOT / "tests" / "agents" / "probe_agent.py"
SECRET = "host-secret-5c1e"


@contextlib.contextmanager
def greeter(family: int, address: Any) -> Iterator[Any]:
    """A server that greets every connection with one line; yields its address."""
    server = socket.socket(family, socket.SOCK_STREAM)
    server.bind(address)
    server.listen()
    stopped = threading.Event()

    def serve() -> None:
        while not stopped.is_set():
            with contextlib.suppress(OSError):
                connection, _ = server.accept()
                with connection:
                    connection.sendall(b"hello from the host\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()
    finally:
        stopped.set()
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        server.close()


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"model api here")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def model_api() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 standing in for the agent's model API; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def prompted(project: Path, env: dict[str, str], agent: str, prompt: str, markers: list[str], *flags: str) -> str:
    """Start `tether FLAGS --agent AGENT`, send one prompt, read until each of ``markers``; all output."""
    process = subprocess.Popen([*TETHER, *flags, "--agent", agent], cwd=project, env=env, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    try:
        lines = Lines(process.stdout)
        lines.until("Type a prompt", 30 * UNIT)
        process.stdin.write(prompt.encode() + b"\n")
        process.stdin.flush()
        for marker in markers:
            lines.until(marker, 30 * UNIT)
        return "".join(lines.seen)
    finally:
        stop(process)


def probe(project: Path, env: dict[str, str], spec: dict[str, Any], *flags: str) -> dict[str, str]:
    """Run probe_agent under `tether FLAGS` and return its probe results."""
    agent = f"{sys.executable} {PROBE_AGENT} {shlex.quote(json.dumps(spec))}"
    text = prompted(project, env, agent, "probe", ["PROBES", "turn ended"], *flags)
    start = text.index("PROBES ") + len("PROBES ")
    end = text.index("}", start) + 1
    return dict(json.loads(text[start:end].replace("\n", "")))


@pytest.fixture(params=["bwrap", "landlock"])
def mechanism(request: pytest.FixtureRequest, tether_env: dict[str, str]) -> str:
    """Each test runs under both Linux mechanisms (sandbox.mechanism): bubblewrap, and Landlock where it is not."""
    name = str(request.param)
    if name == "bwrap":
        require(shutil.which("bwrap") is not None, "bubblewrap is not installed (apt-get install bubblewrap)")
    chosen, detail = sandbox_run.choose(name)
    require(chosen == name, f"{name} does not work on this machine: {detail}")
    Config(Path(tether_env["TETHER_CONFIG_DIR"]) / "config.toml").set("sandbox.mechanism", name)
    return name


def test_escapes_fail_under_sandbox_and_succeed_without(
    tmp_path: Path, project: Path, tether_env: dict[str, str], model_api: str
) -> None:
    """Each escape works without --sandbox and fails with it, under bubblewrap and under Landlock; the allowed
    model API is reached every time."""
    mechanisms = [name for name in ("bwrap", "landlock") if sandbox_run.choose(name)[0] == name]
    require(bool(mechanisms), f"no sandbox mechanism works here: {sandbox_run.choose('auto')[1]}")
    if IN_CI:  # the CI machine has both (bubblewrap from .ci/run, Landlock ABI 4+ in its kernel)
        require(["bwrap", "landlock"] == mechanisms, f"both mechanisms must work in CI, not only {mechanisms}")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("PRIVATE KEY\n")
    (project / ".git").mkdir()
    env = tether_env | {"HOME": str(home), "MY_TOKEN": SECRET, "ANTHROPIC_BASE_URL": model_api}
    config = Config(Path(tether_env["TETHER_CONFIG_DIR"]) / "config.toml")
    with greeter(socket.AF_INET, ("127.0.0.1", 0)) as tcp, greeter(socket.AF_UNIX, str(project / "host.sock")):
        spec = {
            "write": str(tmp_path / "outside.txt"),
            "read": str(home / ".ssh" / "id_ed25519"),
            "tcp": list(tcp),
            "unix": str(project / "host.sock"),  # inside the project: only seccomp stands in the way
            "secret": SECRET,
            "http": "ANTHROPIC_BASE_URL",
        }
        free = probe(project, env, spec, "--no-sandbox")
        assert (tmp_path / "outside.txt").exists()
        (tmp_path / "outside.txt").unlink()
        results = {}
        for name in mechanisms:
            config.set("sandbox.mechanism", name)
            results[name] = probe(project, env, spec, "--sandbox")
    assert {name: "ok" for name in spec} == {name: result.split()[0] for name, result in free.items()}, free
    assert not (tmp_path / "outside.txt").exists()  # bwrap: it landed in the private /tmp; Landlock: refused
    for confined in results.values():
        confined.pop("write")
        assert "ok model api here" == confined.pop("http"), results
        assert {name: "blocked:" for name in confined} == {name: r.split()[0] for name, r in confined.items()}, results
        assert "Operation not permitted" in confined["unix"], results  # seccomp refused the socket itself
        assert "not visible" in confined["secret"], results


def test_sandbox_refused_where_no_mechanism_works(tmp_path: Path, project: Path, tether_env: dict[str, str]) -> None:
    """Without bubblewrap (sandbox.mechanism bwrap), --sandbox refuses to start, says why and what to do, only that."""
    Config(Path(tether_env["TETHER_CONFIG_DIR"]) / "config.toml").set("sandbox.mechanism", "bwrap")
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    result = subprocess.run([*TETHER, "--sandbox", "--agent", "demo"], cwd=project,
                            env=tether_env | {"PATH": str(empty)}, stdin=subprocess.DEVNULL, capture_output=True,
                            timeout=30 * UNIT)  # fmt: skip
    assert 2 == result.returncode
    said = result.stderr.decode().split()
    assert "" == result.stdout.decode()
    text = " ".join(said)
    assert text.startswith("Error: --sandbox cannot confine the agent here: bwrap is not installed"), text
    assert "Something the user can fix" not in text
    assert text.endswith("`tether doctor` shows what works here."), text
    doctor = subprocess.run([*TETHER, "doctor"], cwd=project, env=tether_env | {"PATH": str(empty), "COLUMNS": "300"},
                            capture_output=True, timeout=30 * UNIT)  # fmt: skip
    line = next(line for line in doctor.stdout.decode().splitlines() if line.startswith("sandbox"))
    assert "missing" in line and "bwrap is not installed" in line, line


def test_doctor_says_the_sandbox_works(mechanism: str, project: Path, tether_env: dict[str, str]) -> None:
    """Where bubblewrap runs, `tether doctor` says --sandbox works, and with what."""
    doctor = subprocess.run([*TETHER, "doctor"], cwd=project, env=tether_env | {"COLUMNS": "300"},
                            capture_output=True, timeout=30 * UNIT)  # fmt: skip
    line = next(line for line in doctor.stdout.decode().splitlines() if line.startswith("sandbox"))
    assert " ok " in line and "--sandbox works" in line and "seccomp" in line, line


async def test_the_agents_commands_are_confined_too(mechanism: str, tmp_path: Path) -> None:
    """A terminal/create command under --sandbox: no home, no host /tmp, no network; the project is writable."""
    from tether.host.sandbox_run import Sandbox
    from tether.host.terminals import Terminals

    project, home = tmp_path / "project", tmp_path / "home"
    project.mkdir()
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id").write_text("PRIVATE\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home)}
    with greeter(socket.AF_INET, ("127.0.0.1", 0)) as (_, port):
        connect = f"{sys.executable} -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}))'"
        script = (f"cat {home}/.ssh/id; echo leaked > {tmp_path}/out.txt; echo kept > made.txt; "
                  f"{connect} 2>&1 | tail -1; echo done")  # fmt: skip
        for terminals in (Terminals(project), Terminals(project, sandbox=Sandbox(project, env, mechanism))):
            terminal = await terminals.create(script, None, env, project, None)
            await terminals.wait(terminal.id)
            if terminals.sandbox is None:
                assert "PRIVATE" in terminal.text() and (tmp_path / "out.txt").exists(), terminal.text()
                assert "Error" not in terminal.text()
                (tmp_path / "out.txt").unlink()
    text = terminal.text()
    assert "PRIVATE" not in text and ("No such file" in text or "Permission denied" in text), text
    assert not (tmp_path / "out.txt").exists()
    assert "kept\n" == (project / "made.txt").read_text()
    assert "ConnectionRefusedError" in text or "PermissionError" in text, text
    assert text.endswith("done\n")


def test_tethers_own_agents_start_confined(project: Path, tether_env: dict[str, str]) -> None:
    """The demo agent (tether's own package, imported from wherever tether is installed) runs under each mechanism."""
    mechanisms = [name for name in ("bwrap", "landlock") if sandbox_run.choose(name)[0] == name]
    require(bool(mechanisms), f"no sandbox mechanism works here: {sandbox_run.choose('auto')[1]}")
    config = Config(Path(tether_env["TETHER_CONFIG_DIR"]) / "config.toml")
    for name in mechanisms:
        config.set("sandbox.mechanism", name)
        assert "DEMO agent" in prompted(project, tether_env, "demo", "hi", ["DEMO agent"], "--sandbox"), name
