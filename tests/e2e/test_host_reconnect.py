"""Surviving the network at the host (DESIGN.md rules 7 and 8): a cut link, a relay restart, a stopped host, an
outage past the window, with real processes (`tether relay serve`, `tether rc`) and a fault proxy between them.

The host dials the relay through a FaultProxy; the scripted viewer dials the relay directly, so a fault on
the host's side is the only one. The tests of this module share one relay, one `tether rc` and one viewer
device, in order: each starts from the live session the one before left.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio
import websockets

from tests.conftest import TETHER, UNIT, Lines, RcRun, free_port, log_in, require, start_rc, start_relay, stop
from tests.support.fault_proxy import FaultProxy
from tether.auth.keys import KeySet
from tether.auth.owner import owned_session_id
from tether.auth.tokens import Purpose, mint
from tether.host import link_state, relay_link
from tether.host.paired import PairedDevices
from tether.host.relay_link import RelayLink, Unattended
from tether.relay.app import relay_state
from tether.relay.config import RelayConfig
from tether.relay.server import EmbeddedRelay
from tether.testing import ViewerClient, initiation_token

pytestmark = pytest.mark.asyncio(loop_scope="module")


class RelayServer:
    """`tether relay serve` on a fixed port, killed and started again as an operator's restart does."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = start_relay(self.env, self.port, stderr=subprocess.DEVNULL)

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


@contextlib.asynccontextmanager
async def one_second_window(world: World, tmp_path: Path) -> AsyncIterator[tuple[dict[str, str], FaultProxy, str]]:
    """A config with remote.outage_window = 1, a fault proxy in front of the relay, logged in through it:
    (env, proxy, the relay's address through the proxy)."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "config.toml").write_text("[remote]\noutage_window = 1\n")
    env = {**world.env, "TETHER_CONFIG_DIR": str(config)}
    async with FaultProxy("127.0.0.1", world.relay.port) as proxy:
        host_side = f"http://127.0.0.1:{proxy.port}"
        await asyncio.to_thread(log_in, host_side, env)
        yield env, proxy, host_side


async def test_an_outage_past_the_window_ends_rc_with_status_3(world: World, tmp_path: Path) -> None:
    """With remote.outage_window = 1, a relay that stays unreachable ends `tether rc` with status 3 and says
    why; meanwhile (the relay keeps nothing of the session) another device cannot register its session id."""
    async with one_second_window(world, tmp_path) as (env, proxy, host_side):
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


# -- the link in this process, against a relay in this process: heartbeat, clock, credentials ------------------


class Door:
    """Stands in for HostSession (as in tests/unit/test_relay_link.py): the link hands it viewer events only."""

    def __init__(self) -> None:
        self.core = SimpleNamespace(info={"title": "project", "agent": "scripted", "cwd": "/work/project"})

    def handle(self, event: Any) -> None:
        pass


class Terminal(Unattended):
    """The lines the link says (Questions.say), awaitable."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._changed = asyncio.Condition()

    def say(self, text: str) -> None:
        self.lines.append(text)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def said(self, start: str, within: float = 10 * UNIT) -> str:
        async with asyncio.timeout(within), self._changed:
            while not (found := next((line for line in self.lines if line.startswith(start)), None)):
                await self._changed.wait()
        self.lines.remove(found)
        return found


@dataclass
class Linked:
    relay: EmbeddedRelay
    proxy: FaultProxy
    link: RelayLink
    terminal: Terminal


@pytest_asyncio.fixture(loop_scope="module")
async def linked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Linked]:
    """A RelayLink through a FaultProxy to a relay in this process, with a heartbeat of 0.2 s and a fast watch."""
    monkeypatch.setattr(relay_link, "HEARTBEAT", 0.2)
    monkeypatch.setattr(relay_link, "WATCH_INTERVAL", 0.05)
    clock = {"now": 1000.0}
    monkeypatch.setattr(relay_link, "outage_clock", lambda: clock["now"])
    async with (
        EmbeddedRelay(RelayConfig(port=0)) as relay,
        FaultProxy("127.0.0.1", int(relay.url.rsplit(":", 1)[1])) as proxy,
    ):
        terminal = Terminal()
        session_id = owned_session_id("test-device", os.urandom)

        async def initiate() -> str:  # what POST /v1/initiate gives this device, by the relay's clock
            token, _ = mint(relay.admission.keys, Purpose.INITIATE, "test-device", relay_state(relay.app).clock(),
                            os.urandom)  # fmt: skip
            return token

        link = RelayLink(Door(), f"http://127.0.0.1:{proxy.port}", session_id, questions=terminal,  # type: ignore[arg-type]
                         devices=PairedDevices(tmp_path), accept_device=True, takeover="ask", initiate=initiate,
                         outage_window=60)  # fmt: skip
        link.clock = clock  # type: ignore[attr-defined]  # the test moves it
        await link.connect(initiation_token(relay.admission))
        try:
            yield Linked(relay, proxy, link, terminal)
        finally:
            await link.close()


async def test_a_blackholed_link_is_noticed_by_its_heartbeat_and_comes_back(linked: Linked) -> None:
    """Nothing arrives any more, no reset either (a dead Wi-Fi): the host's pings go unanswered, it notices
    within two heartbeats and dials again; once traffic flows, the link is back."""
    generation = linked.relay.admission.generations[linked.link.session_id]
    linked.proxy.blackhole()
    await linked.terminal.said("relay link lost; reconnecting (1:00 left of the 1:00 window)")
    linked.proxy.blackholed = False
    await linked.terminal.said("relay link back after")
    assert generation == linked.relay.admission.generations[linked.link.session_id]
    assert not linked.link.lost.done()


async def test_just_under_the_window_the_link_comes_back(linked: Linked) -> None:
    """Away for 59.9 s of a 60 s window (the clock injected): back, and live."""
    linked.proxy.hold()
    await linked.terminal.said("relay link lost")
    linked.link.clock["now"] += 59.9  # type: ignore[attr-defined]
    linked.proxy.release()
    await linked.terminal.said("relay link back after 59.9 s")
    assert not linked.link.lost.done()


async def test_just_over_the_window_remote_control_ends(linked: Linked) -> None:
    """Away for 60.1 s of a 60 s window: the link gives up and says why (tether rc then exits 3)."""
    linked.proxy.hold()
    await linked.terminal.said("relay link lost")
    linked.link.clock["now"] += 60.1  # type: ignore[attr-defined]
    reason = await asyncio.wait_for(asyncio.shield(linked.link.lost), 5 * UNIT)
    assert linked.link.outage_ended and "longer than the 1:00 outage window" in reason


async def test_a_lapsed_routing_token_comes_back_with_a_fresh_proof_and_keeps_the_session(linked: Linked) -> None:
    """The link drops once its routing token has lapsed by the relay's clock (moved an hour on): the token is
    refused (4401); the host comes back with a new initiation token and the lapsed routing token beside it:
    same session, same generation (the viewer's link and tokens still work)."""
    admission = linked.relay.admission
    generation = admission.generations[linked.link.session_id]
    state = relay_state(linked.relay.app)
    state.clock = lambda: time.time() + 3600  # the relay's clock, an hour on
    linked.proxy.cut()
    await linked.terminal.said("relay link lost")
    await linked.terminal.said("relay link back after")
    assert generation == admission.generations[linked.link.session_id]
    assert 1 <= state.refusals["expired"]  # the routing token was tried first, and refused


def change_the_network() -> bool:
    """An address added to lo and removed again (needs CAP_NET_ADMIN): what a network change looks like to
    the link (host/netwatch.py). False where this test may not change it."""
    if shutil.which("ip") is None:
        return False
    added = subprocess.run(["ip", "addr", "add", "127.0.0.77/32", "dev", "lo"], capture_output=True, check=False)
    subprocess.run(["ip", "addr", "del", "127.0.0.77/32", "dev", "lo"], capture_output=True, check=False)
    return added.returncode == 0


async def test_a_network_change_checks_a_live_link_and_dials_at_once_when_away(
    linked: Linked, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the machine's network changes, a live link that does not answer a ping within PROBE_TIMEOUT is
    dropped at once (its heartbeat, 30 s here, would take a minute), and a link away dials at once (its
    backoff, 15-30 s here, would wait)."""
    monkeypatch.setattr(relay_link, "HEARTBEAT", 30.0)
    monkeypatch.setattr(relay_link, "PROBE_TIMEOUT", 0.3)
    linked.proxy.cut()  # the connection that comes back has the long heartbeat
    await linked.terminal.said("relay link lost")
    await linked.terminal.said("relay link back after")
    linked.proxy.blackhole()
    require(await asyncio.to_thread(change_the_network), "changing an address of lo (iproute2, CAP_NET_ADMIN)")
    await linked.terminal.said("relay link lost", within=3 * UNIT)
    monkeypatch.setattr(link_state, "BASE", 30.0)
    monkeypatch.setattr(link_state, "CAP", 30.0)
    failed = asyncio.Event()
    rules = linked.link.outage.handle

    def handle(event: link_state.Event) -> list[link_state.Effect]:
        if isinstance(event, link_state.Failed):
            failed.set()
        return rules(event)

    monkeypatch.setattr(linked.link.outage, "handle", handle)
    linked.proxy.blackholed = False
    linked.proxy.hold()  # the attempt under way (stuck in the blackhole) fails now; the next waits 15-30 s
    await asyncio.wait_for(failed.wait(), 5 * UNIT)
    linked.proxy.release()
    assert await asyncio.to_thread(change_the_network)
    await linked.terminal.said("relay link back after", within=3 * UNIT)


async def test_a_host_coming_back_replaces_its_old_connection_that_still_hangs_on() -> None:
    """The relay has not noticed the host's old connection is dead (a network switch) when the host comes back
    with its routing token: no 4409, the old connection is closed 4410, its viewer 4503; the new one holds the
    session and its credentials (a renewal works: nothing of the session was dropped with the old one)."""
    async with EmbeddedRelay(RelayConfig(port=0)) as relay:
        base = relay.url.replace("http://", "ws://")
        session_id = owned_session_id("test-device", os.urandom)
        first = {"Authorization": f"Bearer {initiation_token(relay.admission)}"}
        old = await websockets.connect(f"{base}/v1/host/{session_id}", additional_headers=first)
        given = json.loads(await old.recv())
        viewer = await websockets.connect(f"{base}/v1/viewer/{session_id}")
        await viewer.send(json.dumps({"type": "join", "token": given["join"]}))
        new = await websockets.connect(f"{base}/v1/host/{session_id}",
                                       additional_headers={"Authorization": f"Bearer {given['routing']}"})  # fmt: skip
        assert "credentials" == json.loads(await new.recv())["type"]
        for ws, code in ((old, 4410), (viewer, 4503)):
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), 5 * UNIT)
            assert code == ws.close_code
        await new.send(json.dumps({"type": "renew"}))
        assert "credentials" == json.loads(await asyncio.wait_for(new.recv(), 5 * UNIT))["type"]
        back = await websockets.connect(f"{base}/v1/viewer/{session_id}")
        await back.send(json.dumps({"type": "join", "token": given["join"]}))
        assert {"type": "peer", "role": "viewer", "state": "joined"} == json.loads(await new.recv())
        await back.close()
        await new.close()


async def test_past_the_window_the_interactive_session_goes_on_locally_and_remote_starts_anew(
    world: World, tmp_path: Path
) -> None:
    """In `tether` (a real terminal), an outage past the window ends Remote Control only: the local session
    answers the next prompt, and /remote starts a new remote session once the relay is reachable."""
    from tests.conftest import SCRIPTED_AGENT
    from tests.e2e.test_trust import Pty

    async with one_second_window(world, tmp_path) as (env, proxy, host_side):
        run = Pty(["--remote", "--relay", host_side, "--agent", SCRIPTED_AGENT], world.project, env)
        try:
            await asyncio.to_thread(run.expect, "Remote Control is on.")
            proxy.hold()  # cut, and refuse every new connection past the 1 s window
            await asyncio.to_thread(run.expect, "The local session goes on; /remote starts a new remote session.")
            assert "relay link lost; reconnecting" in run.seen and run.process.poll() is None
            run.type("say still here locally")
            await asyncio.to_thread(run.expect, "still here locally", 10 * UNIT, 3)  # typed, shown, answered
            assert run.seen.count("still here locally") > run.seen.count("say still here locally"), run.seen
            proxy.release()
            run.type("/remote")
            await asyncio.to_thread(run.expect, "Remote Control is on.", 30 * UNIT, 2)
        finally:
            run.close()
