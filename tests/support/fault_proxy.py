"""A TCP proxy for tests that can cut its connections, blackhole them, delay and split what they carry, and refuse
new ones, as a network does."""

from __future__ import annotations

import asyncio
import contextlib


class FaultProxy:
    """127.0.0.1:<port> -> target. ``cut()`` resets every open connection; ``hold()`` makes new ones fail at
    once until ``release()``; ``blackhole()`` silently drops what the open connections carry, both ways,
    without closing them (a phone gone to sleep, a dead Wi-Fi); ``delay`` (seconds) holds each chunk back that long,
    ``split`` (bytes) writes each chunk in pieces of that size, so frames arrive late and in fragments (a slow
    mobile link). Use as ``async with FaultProxy(host, port) as proxy``; ``proxy.port``."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.accepted = 0
        self.holding = False
        self.blackholed = False
        self.delay = 0.0
        self.split = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.cut()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def cut(self) -> None:
        """Drop every open connection (both sides see it end)."""
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._writers.clear()

    def hold(self) -> None:
        self.holding = True
        self.cut()

    def release(self) -> None:
        self.holding = False

    def blackhole(self) -> None:
        self.blackholed = True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self.holding:
                writer.transport.abort()
                return
            self.accepted += 1
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:  # nothing listens there (a relay restarting): the client sees a reset at once
                writer.transport.abort()
                return
            self._writers |= {writer, up_writer}

            async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
                with contextlib.suppress(Exception):
                    while data := await source.read(65536):
                        if self.blackholed:
                            continue  # lost on the way: neither end hears of it
                        if self.delay:
                            await asyncio.sleep(self.delay)  # the network's latency, not a wait of the test
                        step = self.split or len(data)
                        for at in range(0, len(data), step):
                            sink.write(data[at : at + step])
                            await sink.drain()
                with contextlib.suppress(Exception):
                    sink.transport.abort()

            await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
            self._writers -= {writer, up_writer}
        finally:
            self._tasks.discard(task)
