"""Reaching a session from a phone: `--tunnel` through the stand-in tools, a loopback URL, the relay choice.

The stand-ins (tests/fakes/tunnel_tools.py) print the address the way cloudflared and
tailscale do and really forward to the embedded relay; a phone's traffic is played by the
test through the forwarder's port, with the path and fragment of the URL tether announced.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import SCRIPTED_AGENT, TETHER, UNIT, RcRun, chromium, free_port, stop
from tests.fakes import tunnel_tools
from tests.fakes.tunnel_tools import CLOUDFLARED_ADDRESS, TAILSCALE_ADDRESS, StandIns
from tether.config import Config
from tether.testing import ViewerClient

ADDRESSES = {"cloudflared": CLOUDFLARED_ADDRESS, "tailscale": TAILSCALE_ADDRESS}
STOP_SIGNALS = {"cloudflared": "SIGTERM", "tailscale": "SIGINT"}


@pytest.fixture
def standins(tmp_path: Path) -> StandIns:
    """`cloudflared` and `tailscale` stand-ins in a folder of their own."""
    return tunnel_tools.install(tmp_path / "tools")


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The tether processes a test started, stopped at teardown."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        stop(process)


def tether(project: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """Start `tether ARGS` in ``project`` with the scripted agent and pipes on every stream."""
    return subprocess.Popen(
        [*TETHER, *args, "--agent", SCRIPTED_AGENT],
        cwd=project,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def read_until(
    process: subprocess.Popen[bytes], marker: str, timeout: float = 20 * UNIT, stream: str = "stdout"
) -> str:
    """What ``process`` printed on ``stream`` up to ``marker``; fails at the stream's end or after ``timeout``."""
    pipe = process.stdout if stream == "stdout" else process.stderr
    assert pipe is not None
    fd = pipe.fileno()
    deadline = time.monotonic() + timeout
    seen = b""
    while marker.encode() not in seen:
        ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
        data = os.read(fd, 65536) if ready else b""
        if not data:
            raise AssertionError(f"no {marker!r} {'in time' if not ready else 'before the end'}: {seen.decode()}")
        seen += data
    return seen.decode()


def rc_json(project: Path, env: dict[str, str], *flags: str) -> RcRun:
    """`tether rc --json FLAGS` with the scripted agent, and its one JSON line (the test's viewer admitted unasked)."""
    process = tether(project, env, "rc", "--json", "--accept-device", *flags)
    line = read_until(process, "\n", 30 * UNIT)
    data = json.loads(line)
    return RcRun(process=process, url=data["url"], session_id=data["session_id"])


def through(url: str, port: int) -> str:
    """``url`` reached through the stand-in's forwarder: same path and fragment, 127.0.0.1:port."""
    return urlsplit(url)._replace(scheme="http", netloc=f"127.0.0.1:{port}").geturl()


def gone(pid: int) -> bool:
    """Whether no process ``pid`` exists any more."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def ended(process: subprocess.Popen[bytes], timeout: float = 20 * UNIT) -> tuple[int, str]:
    """Exit status and stderr of ``process`` once it ends by itself (fails after ``timeout``)."""
    code = process.wait(timeout)
    assert process.stderr is not None
    return code, process.stderr.read().decode(errors="replace")


@pytest.mark.parametrize("name", ["cloudflared", "tailscale"])
async def test_rc_announces_the_tools_address_and_the_session_works_through_it(
    project: Path, tether_env: dict[str, str], standins: StandIns, processes: list[Any], name: str
) -> None:
    """The JSON URL is the tool's https address; the session works through its forward; it stops with tether."""
    run = rc_json(project, standins.env(tether_env), "--tunnel", name)
    processes.append(run.process)
    assert run.url.startswith(f"{ADDRESSES[name]}/s/{run.session_id}")
    async with ViewerClient(through(run.url, standins.port())) as viewer:
        await viewer.prompt("say hello through the tunnel")
        await viewer.wait_for(lambda v: "hello through the tunnel" in v.texts("agent"), 10 * UNIT)
    run.process.send_signal(signal.SIGTERM)
    code, errors = ended(run.process)
    assert 0 == code, errors
    assert "Traceback" not in errors
    state = standins.read()
    assert STOP_SIGNALS[name] == state["stopped_by"]
    assert isinstance(state["pid"], int) and gone(state["pid"])


def test_the_terminal_shows_the_public_url_for_a_phone(
    project: Path, tether_env: dict[str, str], standins: StandIns, processes: list[Any]
) -> None:
    """With a tunnel the terminal says "Open this URL on your phone" with the https URL, and no loopback note."""
    process = tether(project, standins.env(tether_env), "rc", "--tunnel", "cloudflared")
    processes.append(process)
    shown = read_until(process, "6-digit")
    assert "Open this URL on your phone:" in shown
    assert f"{CLOUDFLARED_ADDRESS}/s/" in shown
    assert "this machine only" not in shown


def test_a_loopback_url_says_so_next_to_the_qr(project: Path, tether_env: dict[str, str], processes: list[Any]) -> None:
    """The embedded relay alone: the terminal says the URL opens here only, and how to reach a phone, after the QR."""
    process = tether(project, tether_env, "rc")
    processes.append(process)
    shown = read_until(process, "6-digit").splitlines()
    assert not any("on your phone" in line for line in shown)
    url = next(i for i, line in enumerate(shown) if line.startswith("http://127.0.0.1:"))
    notes = [i for i, line in enumerate(shown) if "this machine only" in line]
    assert 1 == len(notes) and notes[0] > url + 1  # below the URL and its QR code
    note = shown[notes[0]]
    assert all(part in note for part in ("--tunnel cloudflared", "--tunnel tailscale", "--relay URL", "docs/deploy.md"))


def test_remote_tunnel_in_the_config_is_used(
    project: Path, tether_env: dict[str, str], standins: StandIns, processes: list[Any]
) -> None:
    """`tether config set remote.tunnel tailscale` publishes every session through tailscale."""
    subprocess.run([*TETHER, "config", "set", "remote.tunnel", "tailscale"], env=tether_env, check=True)
    run = rc_json(project, standins.env(tether_env))
    processes.append(run.process)
    assert run.url.startswith(f"{TAILSCALE_ADDRESS}/s/")


def test_the_tunnel_dying_ends_remote_control_in_one_line(
    project: Path, tether_env: dict[str, str], standins: StandIns, processes: list[Any]
) -> None:
    """The tool killed mid-session: `tether rc` says so in one line and exits 1, no traceback."""
    run = rc_json(project, standins.env(tether_env), "--tunnel", "cloudflared")
    processes.append(run.process)
    pid = standins.read()["pid"]
    assert isinstance(pid, int)
    os.kill(pid, signal.SIGKILL)
    code, errors = ended(run.process)
    said = [line for line in errors.splitlines() if "tunnel stopped" in line]
    assert (1, 1) == (code, len(said)), errors
    assert "Remote Control lost: the cloudflared tunnel stopped (killed by SIGKILL)" in said[0]
    assert "Traceback" not in errors


def test_a_missing_tool_is_one_error_and_status_2(project: Path, tether_env: dict[str, str], tmp_path: Path) -> None:
    """No cloudflared on PATH: `tether rc --tunnel cloudflared` names it, says where to get it, exits 2."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    result = subprocess.run(
        [*TETHER, "rc", "--tunnel", "cloudflared", "--agent", SCRIPTED_AGENT],
        cwd=project,
        env=tether_env | {"PATH": str(empty)},
        capture_output=True,
        timeout=60 * UNIT,
    )
    errors = result.stderr.decode()
    assert 2 == result.returncode, errors
    assert "`cloudflared` is not installed" in errors and "github.com/cloudflare/cloudflared/releases" in errors
    assert "Traceback" not in errors


def test_a_failing_tool_shows_what_it_printed_and_status_2(
    project: Path, tether_env: dict[str, str], standins: StandIns
) -> None:
    """tailscale failing at once (no tailscaled): its own error line and exit status, tether exits 2."""
    result = subprocess.run(
        [*TETHER, "rc", "--tunnel", "tailscale", "--agent", SCRIPTED_AGENT],
        cwd=project,
        env=standins.env(tether_env, mode="fail"),
        capture_output=True,
        timeout=60 * UNIT,
    )
    errors = result.stderr.decode()
    assert 2 == result.returncode, errors
    assert "exit status 1" in errors and "failed to connect to local Tailscale daemon" in errors
    assert "Traceback" not in errors


def test_a_relay_and_a_tunnel_together_are_refused(project: Path, tether_env: dict[str, str]) -> None:
    """--relay with --tunnel is refused before anything starts."""
    result = subprocess.run(
        [*TETHER, "rc", "--relay", "https://relay.example.org", "--tunnel", "cloudflared"],
        cwd=project,
        env=tether_env,
        capture_output=True,
        timeout=60 * UNIT,
    )
    assert 2 == result.returncode
    assert "cannot be used together" in result.stderr.decode()


def test_interactive_remote_with_a_tunnel(
    project: Path, tether_env: dict[str, str], standins: StandIns, processes: list[Any]
) -> None:
    """`tether --remote --tunnel tailscale` shows the tailnet address; /quit stops tailscale with Ctrl+C's signal."""
    process = tether(project, standins.env(tether_env), "--remote", "--tunnel", "tailscale")
    processes.append(process)
    shown = read_until(process, "6-digit")
    assert f"{TAILSCALE_ADDRESS}/s/" in shown and "Open this URL on your phone:" in shown
    assert process.stdin is not None
    process.stdin.write(b"/quit\n")
    process.stdin.close()
    code, _ = ended(process)
    assert (0, "SIGINT") == (code, standins.read()["stopped_by"])


@pytest.mark.browser
async def test_the_phone_page_works_through_the_forwarded_port(
    project: Path, tether_env: dict[str, str], standins: StandIns, processes: list[Any]
) -> None:
    """Real Chromium on the announced URL's path through the tool's forward: connected, a prompt gets its answer."""
    from playwright.async_api import expect

    run = rc_json(project, standins.env(tether_env), "--tunnel", "cloudflared")
    processes.append(run.process)
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(through(run.url, standins.port()))
        await expect(page.get_by_test_id("connection-status")).to_contain_text("connected", timeout=10_000 * UNIT)
        await page.get_by_test_id("prompt-input").fill("say hello from the phone")
        await page.get_by_test_id("prompt-send").click()
        agent = page.locator('[data-testid="message"][data-role="agent"]')
        await expect(agent).to_contain_text("hello from the phone", timeout=10_000 * UNIT)


async def test_relay_url_in_the_config_is_the_default_relay(
    project: Path, tether_env: dict[str, str], relay: str, processes: list[Any]
) -> None:
    """`tether config set relay.url URL`: sessions use that relay without --relay."""
    Config(Path(tether_env["TETHER_CONFIG_DIR"]) / "config.toml").set("relay.url", relay)
    run = rc_json(project, tether_env)
    processes.append(run.process)
    assert run.url.startswith(f"{relay}/s/{run.session_id}")
    async with ViewerClient(run.url) as viewer:
        await viewer.prompt("say hello from the configured relay")
        await viewer.wait_for(lambda v: "hello from the configured relay" in v.texts("agent"), 10 * UNIT)


def test_relay_serve_prints_its_public_address(tether_env: dict[str, str], processes: list[Any]) -> None:
    """`tether relay serve --public-url URL` says the URLs it gives out start at that address."""
    port = free_port()
    process = subprocess.Popen(
        [*TETHER, "relay", "serve", "--port", str(port), "--public-url", "https://relay.example.org/"],
        env=tether_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    processes.append(process)
    shown = read_until(process, "start there", stream="stderr")
    assert "Public address: https://relay.example.org (the URLs it gives out start there)" in " ".join(shown.split())


def test_relay_serve_refuses_a_public_url_that_is_no_address(tether_env: dict[str, str]) -> None:
    """A --public-url without http(s):// is a usage error (status 2), before anything listens."""
    result = subprocess.run(
        [*TETHER, "relay", "serve", "--port", "0", "--public-url", "relay.example.org"],
        env=tether_env,
        capture_output=True,
        timeout=60 * UNIT,
    )
    assert 2 == result.returncode
    assert "--public-url" in result.stderr.decode() and "https://relay.example.org" in result.stderr.decode()
