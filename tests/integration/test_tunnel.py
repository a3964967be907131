"""host/tunnel.py's Tunnel against the stand-in tools (tests/fakes/tunnel_tools.py) and a real relay."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import UNIT
from tests.fakes import tunnel_tools
from tests.fakes.tunnel_tools import CLOUDFLARED_ADDRESS, TAILSCALE_ADDRESS, StandIns
from tether.errors import TunnelFailed
from tether.host.tunnel import Tunnel, tool
from tether.relay.server import EmbeddedRelay

ADDRESSES = {"cloudflared": CLOUDFLARED_ADDRESS, "tailscale": TAILSCALE_ADDRESS}
STOP_SIGNALS = {"cloudflared": "SIGTERM", "tailscale": "SIGINT"}
MESSAGES = {
    ("cloudflared", "silent"): "Requesting new quick Tunnel on trycloudflare.com...",
    ("tailscale", "silent"): "https://login.tailscale.com/f/serve?node=nSTANDIN",
    ("cloudflared", "fail"): "failed to request quick Tunnel",
    ("tailscale", "fail"): "failed to connect to local Tailscale daemon",
}


@pytest.fixture
def standins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandIns:
    """The stand-ins first on this process's PATH, in mode ok."""
    installed = tunnel_tools.install(tmp_path)
    for name, value in installed.env({"PATH": os.environ.get("PATH", "")}).items():
        monkeypatch.setenv(name, value)
    return installed


@pytest.fixture
async def relay() -> AsyncIterator[str]:
    """An embedded relay on 127.0.0.1; yields its URL."""
    async with EmbeddedRelay() as running:
        yield running.url


def gone(pid: int) -> bool:
    """Whether no process ``pid`` exists any more (it was reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("name", ["cloudflared", "tailscale"])
async def test_the_tunnel_gives_the_public_address_and_forwards(standins: StandIns, relay: str, name: str) -> None:
    """The address is the one the tool printed; the tool really forwards to the relay; leaving stops it."""
    async with Tunnel(tool(name), relay, start_timeout=10 * UNIT) as tunnel:
        assert ADDRESSES[name] == tunnel.url
        assert list(tool(name).command(relay)[1:]) == standins.read()["argv"]
        async with httpx.AsyncClient() as client:
            health = await client.get(f"http://127.0.0.1:{standins.port()}/healthz", timeout=5 * UNIT)
        assert 200 == health.status_code
        pid = tunnel.pid
    assert pid is not None and gone(pid)
    assert STOP_SIGNALS[name] == standins.read()["stopped_by"]
    assert not tunnel.lost.done()


@pytest.mark.parametrize("name", ["cloudflared", "tailscale"])
async def test_a_tool_that_gives_no_address_fails_within_the_bound(
    standins: StandIns, relay: str, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """No address within start_timeout: TunnelFailed naming the command and its last line; the tool is stopped."""
    monkeypatch.setenv("STANDIN_MODE", "silent")
    tunnel = Tunnel(tool(name), relay, start_timeout=1 * UNIT)
    async with asyncio.timeout(10 * UNIT):
        with pytest.raises(TunnelFailed) as failed:
            await tunnel.__aenter__()
    message = str(failed.value)
    assert f"`{name} " in message and "gave no address" in message and MESSAGES[(name, "silent")] in message
    assert tunnel.pid is not None and gone(tunnel.pid)


@pytest.mark.parametrize("name", ["cloudflared", "tailscale"])
async def test_a_tool_that_exits_first_says_what_it_printed(
    standins: StandIns, relay: str, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """A tool that stops before its address: TunnelFailed with its exit status and its error line."""
    monkeypatch.setenv("STANDIN_MODE", "fail")
    with pytest.raises(TunnelFailed) as failed:
        async with Tunnel(tool(name), relay, start_timeout=10 * UNIT):
            pass
    message = str(failed.value)
    assert "exit status 1" in message and MESSAGES[(name, "fail")] in message


async def test_a_missing_tool_says_how_to_install_it(
    tmp_path: Path, relay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No such tool on PATH: TunnelFailed saying so, with where to get it."""
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TunnelFailed, match=r"`cloudflared` is not installed.*github.com/cloudflare/cloudflared"):
        async with Tunnel(tool("cloudflared"), relay):
            pass


async def test_a_tool_that_dies_resolves_lost_with_one_line(standins: StandIns, relay: str) -> None:
    """The tool killed while in use: lost says which tunnel stopped, how, and what it printed last."""
    async with Tunnel(tool("cloudflared"), relay, start_timeout=10 * UNIT) as tunnel:
        assert tunnel.pid is not None
        os.kill(tunnel.pid, signal.SIGKILL)
        async with asyncio.timeout(10 * UNIT):
            reason = await tunnel.lost
    assert reason.startswith("the cloudflared tunnel stopped (killed by SIGKILL); it printed: ")
    assert "\n" not in reason
