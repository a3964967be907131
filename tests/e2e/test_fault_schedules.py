"""Random fault schedules between the viewer and the relay: nothing lost, nothing duplicated (issue 10).

A real relay and a real host (HostSession, RelayLink) run in this process with the
scripted ACP agent as a subprocess; the viewer (tether.testing.ViewerClient: handshake,
device, signed decisions, resume) reaches the relay through a FaultProxy. Hypothesis draws
schedules of faults (cut, blackhole then cut, delay, split frames), each fired the moment
the viewer has applied some number of further transcript messages (so mid-stream, with
the rest in flight), against a long streamed answer and an approval. After every fault
that drops the connection the viewer comes back as the same device with the transcript it
has, and on purpose sends its last prompt and its last decision again (it cannot know
whether they arrived).

After each schedule: the viewer's transcript equals the host's exactly, each prompt ran
once, each approval was decided once (one audit record), the file was written once, and no
rejoin needed the whole transcript again (one snapshot in all, replays after that).

One host, relay and agent serve every example (a few, derandomized: stable in CI, well
under 20 s); each example continues the previous one's conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import SCRIPTED_AGENT, UNIT
from tests.support.fault_proxy import FaultProxy
from tether.host.agent_process import resolve
from tether.host.core.phases import Phase
from tether.host.paired import AuditLog, PairedDevices
from tether.host.relay_link import RelayLink
from tether.host.session import HostSession
from tether.protocol.messages import Message, Prompt
from tether.relay.server import EmbeddedRelay, RelayConfig
from tether.testing import ViewerClient, initiation_token, option_id

WAIT = 20 * UNIT
WORDS = 80  # the streamed answer: one chunk per word
PACE_MS = 3  # between its chunks: faults land mid-stream, with the rest of it still to come

# (fault, how many more transcript messages the viewer applies before it fires)
FAULTS = st.lists(
    st.tuples(st.sampled_from(["cut", "blackhole", "delay", "split"]), st.integers(min_value=0, max_value=60)),
    min_size=1,
    max_size=4,
)


class Probe:
    """A screen on the host that only wakes the test when the host shows something."""

    name = "probe"

    def __init__(self, wake: asyncio.Event) -> None:
        self.wake = wake

    def deliver(self, message: Message) -> None:
        self.wake.set()


class Bench:
    """The relay, the host, the proxy and the viewer of every example."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.wake = asyncio.Event()
        self.stack = contextlib.AsyncExitStack()
        self.examples = 0
        self.armed: tuple[str, int] | None = None  # the next fault and the viewer's count it fires at
        self.fired: str | None = None
        self.last_prompt: Prompt | None = None  # of this example: sent again after each rejoin
        self.last_decision: tuple[str, str] | None = None

    async def start(self) -> None:
        project = self.folder / "project"
        project.mkdir()
        self.project = project
        self.relay = await self.stack.enter_async_context(EmbeddedRelay(RelayConfig(host="127.0.0.1", port=0)))
        self.session = HostSession(project, resolve(SCRIPTED_AGENT), self.folder / "agent.log")
        await self.session.start()
        self.stack.push_async_callback(self.session.close, "the test is over")
        self.link = RelayLink(self.session, self.relay.url, devices=PairedDevices(self.folder / "state"),
                              accept_device=True)  # fmt: skip
        await self.link.connect(initiation_token(self.relay.admission))
        self.stack.push_async_callback(self.link.close)
        self.session.sinks += [self.link, Probe(self.wake)]
        port = urlsplit(self.relay.url).port
        self.proxy = await self.stack.enter_async_context(FaultProxy("127.0.0.1", port or 0))
        self.url = self.link.url.replace(f":{port}/", f":{self.proxy.port}/")
        self.viewer = await self._connect({})
        self.stack.push_async_callback(lambda: self.viewer.__aexit__(None, None, None))

    async def _connect(self, carry: dict[str, Any]) -> ViewerClient:
        while True:
            viewer = ViewerClient(self.url, **carry, wait_admitted=False)
            viewer.on_change = self._changed
            self.viewer = await viewer.__aenter__()
            await self.until(lambda: viewer.admitted or viewer.closed)  # noqa: B023 (awaited at once)
            if viewer.admitted:
                return viewer
            await viewer.__aexit__(None, None, None)
            # The relay frees the old connection's slot as soon as it sees the reset: until then 4409.
            assert 4409 == viewer.close_code, viewer.close_code
            await asyncio.sleep(0.02 * UNIT)  # the page's backoff before it tries again

    async def rejoin(self) -> None:
        """Come back as the same device with the transcript it has; send the last prompt and decision again."""
        old = self.viewer
        carry = old.rejoin()
        await old.__aexit__(None, None, None)
        viewer = await self._connect(carry)
        with contextlib.suppress(websockets.ConnectionClosed):
            if self.last_prompt is not None:
                await viewer.send(self.last_prompt)  # maybe arrived before the drop: must not run twice
            if self.last_decision is not None and self.last_decision[0] in viewer.entries:
                await viewer.decide(*self.last_decision)  # answered already, or pending: applied once

    def _changed(self) -> None:
        """After each message the viewer applies: fire the armed fault right there, mid-stream."""
        self.wake.set()
        if self.armed is not None and (self.viewer.mirror.at or 0) >= self.armed[1]:
            self.fire()

    def fire(self) -> None:
        """The armed fault, at once (what the network does; the viewer's coming back follows in ``run``)."""
        assert self.armed is not None
        fault, after = self.armed
        self.armed = None
        self.fired = fault
        if fault == "cut":
            self.proxy.cut()
        elif fault == "blackhole":  # what is sent is lost both ways, until the heartbeat notices (then a cut)
            self.proxy.blackhole()
        elif fault == "delay":
            self.proxy.delay = 0.002 * (1 + after % 5)
        else:
            self.proxy.split = 1 + after % 7

    def settled(self) -> bool:
        """Nothing more to happen: the host took every prompt, ran them all, and the viewer has all it said."""
        core = self.session.core
        taken = all(prompt_id in core.prompt_ids for prompt_id in self.viewer.unconfirmed)
        return taken and self.idle() and self.viewer.mirror.at == core.journal.head

    def idle(self) -> bool:
        core = self.session.core
        return core.phase is Phase.READY and not core.prompts and not core.approvals.pending()

    async def approve(self) -> None:
        """The person on the phone taps "approve once" on each request it shows, once."""
        viewer = self.viewer
        if not viewer.admitted or viewer.closed:
            return
        for entry in viewer.of_type("approval"):
            if entry["state"] == "pending" and entry["id"] not in viewer.decided:
                self.last_decision = (entry["id"], option_id(entry, "allow_once"))
                with contextlib.suppress(websockets.ConnectionClosed):
                    await viewer.decide(*self.last_decision)

    async def until(self, done: Callable[[], bool]) -> None:
        """Wait (on the host's and the viewer's messages, never a clock) until ``done()``, approving meanwhile."""
        async with asyncio.timeout(WAIT):
            while True:
                self.wake.clear()
                await self.approve()
                if done():
                    return
                await self.wake.wait()

    async def prompt(self, text: str) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            prompt_id = await self.viewer.prompt(text)
            self.last_prompt = Prompt(text=text, id=prompt_id)

    async def run(self, faults: list[tuple[str, int]]) -> None:
        """One example: prompts, the faults in order, then the checks of the module doc."""
        self.examples += 1
        n = self.examples
        self.last_prompt, self.last_decision = None, None
        journal, proxy = self.session.core.journal, self.proxy
        answer = " ".join(f"w{n}.{i}" for i in range(WORDS))
        texts = [f"pace {PACE_MS} {answer}", f"write sync{n}.txt content {n}", f"say done {n}"]
        await self.prompt(texts[0])
        await self.prompt(texts[1])
        for index, (fault, after) in enumerate(faults):
            self.fired = None
            self.armed = (fault, (self.viewer.mirror.at or 0) + after)
            await self.until(lambda: self.fired is not None or self.settled())
            if self.fired is None:
                self.fire()  # the conversation was over before the count: fire now
            if fault == "blackhole":
                if index == 0:
                    await self.prompt(texts[2])  # lost on the way: sent again when back, run once
                mark = journal.head  # the host goes on (or waits for an approval the viewer cannot see)
                await self.until(lambda: journal.head >= mark + 3 or self.idle() or bool(  # noqa: B023
                    self.session.core.approvals.pending()))  # fmt: skip
                proxy.cut()
                proxy.blackholed = False
            if fault in ("cut", "blackhole"):
                await self.rejoin()
            if index == 0 and fault != "blackhole":
                await self.prompt(texts[2])
        proxy.delay, proxy.split = 0.0, 0
        await self.until(lambda: self.settled() and len(self.users(texts)) >= 3)
        self.check(texts, n)

    def users(self, texts: list[str]) -> list[str]:
        return [e["text"] for e in self.session.core.transcript.entries.values()
                if e.get("role") == "user" and e.get("text") in texts]  # fmt: skip

    def check(self, texts: list[str], n: int) -> None:
        host = json.loads(json.dumps(self.session.core.transcript.entries))
        mirror = self.viewer.mirror
        assert host == mirror.entries  # the viewer's transcript is the host's, exactly
        assert texts == self.users(texts)  # each prompt ran once, in order
        approvals = [e for e in host.values() if e["type"] == "approval" and e["title"].endswith(f"sync{n}.txt")]
        assert 1 == len(approvals) and "decided" == approvals[0]["state"], approvals
        audited = [r for r in AuditLog(self.folder / "state").read() if r.get("approval") == approvals[0]["id"]]
        assert 1 == len(audited)  # decided once, whatever was sent again
        wrote = [e for e in host.values() if e.get("role") == "agent" and f"wrote sync{n}.txt" in e["text"]]
        assert 1 == len(wrote) and f"content {n}" == (self.project / f"sync{n}.txt").read_text()
        assert (1, 0) == (mirror.snapshots, mirror.duplicates)  # every rejoin was a replay, nothing applied twice


@pytest.fixture
def bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[asyncio.Runner, Bench]]:
    monkeypatch.setenv("TETHER_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("TETHER_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("TETHER_KEYRING", "0")
    with asyncio.Runner() as runner:
        bench = Bench(tmp_path)
        try:
            runner.run(bench.start())
            yield runner, bench
        finally:
            runner.run(bench.stack.aclose())


def test_random_fault_schedules_lose_nothing_and_duplicate_nothing(bench: tuple[asyncio.Runner, Bench]) -> None:
    """Any schedule of cuts, blackholes, delays and split frames: the host's transcript exactly, once."""
    runner, host = bench

    @settings(max_examples=8, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])  # fmt: skip
    @given(faults=FAULTS)
    def schedule(faults: list[tuple[str, int]]) -> None:
        runner.run(host.run(faults))

    schedule()
