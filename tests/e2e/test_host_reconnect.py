"""Surviving the network at the host (DESIGN.md rules 7 and 8): a cut link, a relay restart, a stopped host, an
outage past the window, with real processes (`tether relay serve`, `tether rc`) and a fault proxy between them.

The host dials the relay through a FaultProxy; the scripted viewer dials the relay directly, so a fault on
the host's side is the only one. The tests of this module share one relay, one `tether rc` and one viewer
device, in order: each starts from the live session the one before left.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import websockets

from tests.conftest import TETHER, UNIT, Lines, RcRun, free_port, log_in, start_rc, stop
from tests.support.fault_proxy import FaultProxy
from tether.auth.keys import KeySet
from tether.auth.tokens import Purpose, mint
from tether.testing import ViewerClient

pytestmark = pytest.mark.asyncio(loop_scope="module")


class RelayServer:
    """`tether relay serve` on a fixed port, killed and started again as an operator's restart does."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [*TETHER, "relay", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10 * UNIT
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=UNIT).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and self.process.poll() is None, "the relay did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def keys(self) -> KeySet:
        """The relay's signing keys (its keys file in the state folder, kept across restarts)."""
        return KeySet.from_json((Path(self.env["TETHER_STATE_DIR"]) / "relay-keys.json").read_text())


@dataclass
class World:
    env: dict[str, str]
    project: Path
    relay: RelayServer
    proxy: FaultProxy
    rc: RcRun
    lines: Lines
    resume: dict[str, Any] = field(default_factory=dict)  # how the viewer device comes back (ViewerClient.rejoin)

    @property
    def viewer_url(self) -> str:
        """The session URL with the relay's own address: the viewer does not go through the host's proxy."""
        return self.rc.url.replace(f":{self.proxy.port}/", f":{self.relay.port}/")

    async def until(self, marker: str) -> None:
        """The next line of `tether rc`'s terminal (stderr, with --json) with ``marker``, within 10 units."""
        await asyncio.to_thread(self.lines.until, marker, 10 * UNIT)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("reconnect")
    return {**os.environ, "TETHER_CONFIG_DIR": str(root / "config"), "TETHER_STATE_DIR": str(root / "state"),
            "TETHER_KEYRING": "0"}  # fmt: skip


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    project = tmp_path_factory.mktemp("project")
    await asyncio.to_thread(subprocess.run, [*TETHER, "trust", str(project)], env=env, check=True, capture_output=True)
    relay = RelayServer(env)
    await asyncio.to_thread(relay.start)
    async with FaultProxy("127.0.0.1", relay.port) as proxy:
        host_side = f"http://127.0.0.1:{proxy.port}"
        await asyncio.to_thread(log_in, host_side, env)  # the host knows the relay by the proxy's address
        rc = await asyncio.to_thread(start_rc, project, env, host_side)
        assert rc.process.stderr is not None
        world = World(env, project, relay, proxy, rc, Lines(rc.process.stderr))
        try:
            yield world
        finally:
            stop(rc.process)
            if relay.process is not None:
                stop(relay.process)


async def converse(world: World, text: str) -> ViewerClient:
    """The viewer device (coming back, once it was there) says ``text``; the agent's answer arrives."""
    viewer = ViewerClient(world.viewer_url, **world.resume)
    await viewer.__aenter__()
    assert viewer.admitted, viewer.refused
    await viewer.prompt(f"say {text}")
    await viewer.wait_for(lambda v: text in v.texts("agent"), 10 * UNIT)
    world.resume = viewer.rejoin()
    return viewer


async def test_a_cut_link_comes_back_and_the_viewer_resumes_without_pairing(world: World) -> None:
    """The host's connection is reset: the viewer is told `host away` (4503), not `ended`; `tether rc` says the
    link is lost and back and keeps running; the same device comes back (its resume secret) to the same
    transcript, and the session answers again."""
    viewer = await converse(world, "one")
    world.proxy.cut()
    await viewer.wait_for(lambda v: v.closed, 10 * UNIT)
    assert (4503, None) == (viewer.close_code, viewer.ended)
    await world.until("relay link lost; reconnecting (")
    await world.until("relay link back after")
    assert world.rc.process.poll() is None
    again = await converse(world, "two")
    assert ["one", "two"] == [t for t in again.texts("agent") if t in ("one", "two")]
    await again.__aexit__(None, None, None)


async def test_the_session_survives_a_relay_restart(world: World) -> None:
    """The relay process is killed and started again on its port (same keys, no session state): the host takes
    its session back with its routing token, the viewer's link and resume secret still work."""
    viewer = await converse(world, "three")
    world.relay.kill()
    await viewer.wait_for(lambda v: v.closed, 10 * UNIT)
    await world.until("relay link lost")
    await asyncio.to_thread(world.relay.start)
    await world.until("relay link back after")
    await viewer.__aexit__(None, None, None)
    again = await converse(world, "four")
    assert {"one", "three", "four"} <= set(again.texts("agent"))
    await again.__aexit__(None, None, None)


async def test_a_host_stopped_past_the_heartbeat_resumes_after_sigcont(world: World) -> None:
    """SIGSTOP (a laptop asleep) for longer than the relay's heartbeat: the relay lets the session go and tells
    the viewer the host is away; after SIGCONT the host is back within seconds and the viewer gets new events."""
    viewer = await converse(world, "five")
    world.rc.process.send_signal(signal.SIGSTOP)
    try:
        await viewer.wait_for(lambda v: v.closed, 20 * UNIT)  # the relay's ping went unanswered
        assert 4503 == viewer.close_code
    finally:
        world.rc.process.send_signal(signal.SIGCONT)
    await world.until("relay link back after")
    await viewer.__aexit__(None, None, None)
    again = await converse(world, "six")
    assert {"five", "six"} <= set(again.texts("agent"))
    await again.__aexit__(None, None, None)


async def test_an_outage_past_the_window_ends_rc_with_status_3(world: World, tmp_path: Path) -> None:
    """With remote.outage_window = 1, a relay that stays unreachable ends `tether rc` with status 3 and says
    why; meanwhile (the relay keeps nothing of the session) another device cannot register its session id."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "config.toml").write_text("[remote]\noutage_window = 1\n")
    env = {**world.env, "TETHER_CONFIG_DIR": str(config)}
    async with FaultProxy("127.0.0.1", world.relay.port) as proxy:
        host_side = f"http://127.0.0.1:{proxy.port}"
        await asyncio.to_thread(log_in, host_side, env)
        rc = await asyncio.to_thread(start_rc, world.project, env, host_side)
        try:
            assert 43 == len(rc.session_id)  # an owned id (auth/owner.py)
            proxy.hold()  # cut, and refuse every new connection
            stranger, _ = mint(world.relay.keys(), Purpose.INITIATE, "someone-else", time.time(), os.urandom)
            squat = await websockets.connect(f"ws://127.0.0.1:{world.relay.port}/v1/host/{rc.session_id}",
                                             additional_headers={"Authorization": f"Bearer {stranger}"})  # fmt: skip
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(squat.recv(), 5 * UNIT)
            assert 4401 == squat.close_code
            assert 3 == await asyncio.to_thread(rc.process.wait, 10 * UNIT)
            assert rc.process.stderr is not None
            said = " ".join(rc.process.stderr.read().decode(errors="replace").split())  # as one line, unwrapped
            assert "relay link lost; reconnecting (0:01 left of the 0:01 window)" in said, said
            assert "Remote Control lost: the relay link was lost for longer than the 0:01 outage window" in said
        finally:
            stop(rc.process)


async def test_rc_help_documents_the_exit_status() -> None:
    """`tether rc --help` names status 3 and the setting."""
    help_run = await asyncio.to_thread(subprocess.run, [*TETHER, "rc", "--help"], capture_output=True, text=True,
                                       env={**os.environ, "COLUMNS": "200"}, check=True)  # fmt: skip
    shown = help_run.stdout
    assert "3 the relay link stayed away longer than remote.outage_window" in " ".join(shown.split())
