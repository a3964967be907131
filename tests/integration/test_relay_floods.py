"""Floods against a real relay process, each beside a live session that must keep working.

Issue 8, "Before a relay faces the internet": idle connections that exhaust descriptors,
sessions whose readers never read, bad requests that write tracebacks. Each flood is
bounded in count and time and stops by itself; the relay runs under a lowered
``ulimit -n`` where descriptors matter, so a few hundred connections stand for
thousands. Memory figures are bounds on behaviour (the budget holds, memory comes back),
measured in benchmarks/relay_memory.py, not timed here.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import websockets
from websockets.frames import Frame, Opcode

from tests.conftest import UNIT
from tests.integration.relay_process import (
    RelayProcess,
    control,
    live_session,
    make_ca,
    open_host,
    open_viewer,
    relay_process,
)

FLOOD = 300  # idle connections, against a relay allowed 256 descriptors
NOFILE = 256
MIB = 1024 * 1024


async def _idle_connection(relay: RelayProcess) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    port = int(relay.url.rsplit(":", 1)[1])
    return await asyncio.open_connection("127.0.0.1", port)


async def _closed_by_relay(reader: asyncio.StreamReader, within: float) -> bytes | None:
    """What the relay sent before closing, or None if it kept the connection open ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            return await reader.read()
    except TimeoutError:
        return None
    except ConnectionError:
        return b""


async def test_idle_connection_flood_is_refused_and_the_relay_keeps_serving(
    tmp_path: Path, tether_env: dict[str, str]
) -> None:
    """300 connections that never send a byte, under `ulimit -n 256`: over the cap answered 503, the rest closed after the handshake timeout; a live session goes on."""  # noqa: E501
    timeout = 2 * UNIT
    with relay_process(tmp_path, tether_env, "--handshake-timeout", str(timeout), nofile=NOFILE) as relay:
        session = await live_session(relay)
        flood = [await _idle_connection(relay) for _ in range(FLOOD)]
        await session.exchange()  # while every flood connection is open or being refused
        outcomes = await asyncio.gather(*(_closed_by_relay(reader, timeout + 10 * UNIT) for reader, _ in flood))
        refused = [outcome for outcome in outcomes if outcome and outcome.startswith(b"HTTP/1.1 503")]
        assert all(outcome is not None for outcome in outcomes), "an idle connection outlived the handshake timeout"
        assert refused, "nothing was refused over the connection cap"
        await session.exchange()
        figures = await relay.metrics()
        assert (len(refused), FLOOD - len(refused)) == (
            figures["drops"]["over_capacity"],
            figures["drops"]["idle"],
        )
        await (await live_session(relay)).close()  # a new session can start once the flood is gone
        await session.close()
        for _, writer in flood:
            writer.close()
        assert relay.alive()


async def test_idle_flood_cannot_stop_the_relay_through_its_log(tmp_path: Path, tether_env: dict[str, str]) -> None:
    """TLS connections that never say hello exhaust `ulimit -n 256` (accept fails, logged): the relay goes on."""
    # A connection in its TLS handshake is not yet counted by the cap: only the handshake timeout frees it.
    pki = make_ca(tmp_path / "pki")
    timeout = 2 * UNIT
    with relay_process(tmp_path, tether_env, "--handshake-timeout", str(timeout), nofile=NOFILE,
                       tls=(pki.cert, pki.key, pki.client())) as relay:  # fmt: skip
        session = await live_session(relay)
        flood = [await _idle_connection(relay) for _ in range(FLOOD)]
        await session.exchange()
        outcomes = await asyncio.gather(*(_closed_by_relay(reader, 4 * timeout + 10 * UNIT) for reader, _ in flood))
        assert all(outcome is not None for outcome in outcomes), "an idle connection outlived the handshake timeout"
        for _, writer in flood:
            writer.close()
        await session.exchange()
        assert relay.alive()
        assert "out of system resource" in (tmp_path / "state" / "logs" / "tether.log").read_text()
        await (await live_session(relay)).close()
        await session.close()


async def test_memory_flood_stays_within_the_budget_and_memory_comes_back(
    tmp_path: Path, tether_env: dict[str, str]
) -> None:
    """Sessions pumping 1 MiB frames to viewers that never read: queued bytes stay within the budget, a live session goes on, RSS returns."""  # noqa: E501
    budget_mib, sessions, frames = 32, 16, 24  # the flood tries 384 MiB against a 32 MiB budget
    args = ("--max-queued-mib", str(budget_mib), "--slow-timeout", str(3 * UNIT))
    with relay_process(tmp_path, tether_env, *args) as relay:
        session = await live_session(relay)
        before = relay.rss_mib()
        frame = secrets.token_bytes(MIB - 64)

        async def flooder() -> None:
            session_id, host, join = await open_host(relay, max_size=None)
            # A viewer that never reads: the client library stops reading after one message.
            viewer = await open_viewer(relay, session_id, join, max_size=None, max_queue=1)
            await control(host, "peer")
            try:
                for _ in range(frames):
                    await host.send(frame)
            except websockets.ConnectionClosed:
                pass
            relay.sessions.append((host, viewer))

        pumping = asyncio.gather(*(flooder() for _ in range(sessions)))
        peaks = []
        while not pumping.done():
            figures = await relay.metrics()
            peaks.append(figures["queued_bytes"])
            assert figures["queued_bytes"] <= budget_mib * MIB
            await session.exchange(within=10 * UNIT)
            await asyncio.wait({pumping}, timeout=0.2 * UNIT)
        await pumping
        figures = await relay.metrics()
        assert budget_mib * MIB >= figures["queued_bytes_peak"] > budget_mib * MIB // 2
        assert figures["drops"]["too_slow"] > 0  # the flood's readers were cut, 4408
        for host, viewer in relay.sessions:
            await host.close()
            viewer.transport.abort()
        await session.exchange()
        await _until(lambda: _queued(relay), 0, 10 * UNIT)
        # A standalone relay trims its heap a second after its queues emptied (relay/process.py).
        after = await _until_below(relay.rss_mib, before + budget_mib, 10 * UNIT)
        assert after < before + budget_mib, f"RSS {before:.0f} MiB before the flood, {after:.0f} MiB after"
        await session.close()


async def _queued(relay: RelayProcess) -> int:
    figures = await relay.metrics()
    return int(figures["queued_bytes"] + figures["sessions"] - 1)  # only the live session left, nothing queued


async def _until(read: object, expected: int, within: float) -> None:
    assert callable(read)
    async with asyncio.timeout(within):
        while True:
            if (await read()) == expected:
                return
            await asyncio.sleep(0.05 * UNIT)


async def _until_below(read: Callable[[], float], bound: float, within: float) -> float:
    """``read()`` polled until it is below ``bound`` or ``within`` seconds passed: its last value."""
    deadline = time.monotonic() + within
    while True:
        value = read()
        if value < bound or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05 * UNIT)  # another process's memory: nothing to wait on but time


async def test_sessions_per_address_are_bounded(tmp_path: Path, tether_env: dict[str, str]) -> None:
    """One address holds at most --sessions-per-address host ends; more are closed 4429, X-Forwarded-For ignored unless trusted."""  # noqa: E501
    with relay_process(tmp_path, tether_env, "--sessions-per-address", "3") as relay:
        held = [await open_host(relay) for _ in range(3)]
        for spoof in ("203.0.113.7", "198.51.100.9"):
            with pytest.raises(websockets.ConnectionClosed) as refused:
                await open_host(relay, headers={"X-Forwarded-For": spoof})
            assert (4429, "too many sessions") == (refused.value.rcvd.code, refused.value.rcvd.reason)
        await held[0][1].close()
        await _until(lambda: _sessions(relay), 2, 5 * UNIT)
        replacement = await open_host(relay)  # a freed slot is usable again
        figures = await relay.metrics()
        assert (2, 1) == (figures["drops"]["too_many_sessions"], figures["addresses"])
        for _, host, _ in [*held[1:], replacement]:
            await host.close()


async def test_trusted_proxy_names_the_client(tmp_path: Path, tether_env: dict[str, str]) -> None:
    """Behind --trusted-proxy, X-Forwarded-For is the client address the limit counts."""
    with relay_process(tmp_path, tether_env, "--sessions-per-address", "1", "--trusted-proxy", "127.0.0.1") as relay:
        first = await open_host(relay, headers={"X-Forwarded-For": "203.0.113.7"})
        second = await open_host(relay, headers={"X-Forwarded-For": "198.51.100.9"})
        with pytest.raises(websockets.ConnectionClosed) as refused:
            await open_host(relay, headers={"X-Forwarded-For": "203.0.113.7"})
        assert 4429 == refused.value.rcvd.code
        assert 2 == (await relay.metrics())["addresses"]
        for _, host, _ in (first, second):
            await host.close()


async def _sessions(relay: RelayProcess) -> int:
    return int((await relay.metrics())["sessions"])


CHUNKED = b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"  # 66 bytes


async def test_bad_requests_are_counted_lines_not_tracebacks(tmp_path: Path, tether_env: dict[str, str]) -> None:
    """Malformed chunked requests and invalid UTF-8 text frames: each counted by reason, no traceback, few log lines."""
    assert 66 == len(CHUNKED)
    with relay_process(tmp_path, tether_env) as relay:
        session = await live_session(relay)
        for _ in range(40):
            reader, writer = await _idle_connection(relay)
            writer.write(CHUNKED)
            assert (await reader.read()).startswith(b"HTTP/1.1 400")
            writer.close()
        for _ in range(20):
            _session_id, host, _join = await open_host(relay)
            host.protocol.send_frame(Frame(Opcode.TEXT, b"\xff\xfe not UTF-8"))
            host.send_data()
            with pytest.raises(websockets.ConnectionClosed):
                await control(host, "never")
            assert 1007 == host.close_code
        await session.exchange()
        figures = await relay.metrics()
        assert (40, 20) == (figures["drops"]["bad_request"], figures["drops"]["malformed"])
        log = relay.stderr()
        assert "Traceback" not in log
        assert len(log.splitlines()) <= 6, log  # the start line, then at most one per kind of bad input
        await session.close()
        json.dumps(figures)  # the figures are plain JSON
