"""The baseline the relay is measured against: the obvious forwarder written directly on `websockets`.

Same URL scheme as the relay (``/v1/host/ID``, ``/v1/viewer/ID``), no credentials, no
limits beyond the frame size: each session is a dict of its two connections, every binary
frame goes to the other one. When both ends are there each gets the text ``joined``, so a
client knows frames will be delivered. Run: ``python benchmarks/bare_forwarder.py PORT``.
"""

from __future__ import annotations

import asyncio
import sys

from websockets.asyncio.server import ServerConnection, serve

sessions: dict[str, dict[str, ServerConnection]] = {}


async def handler(ws: ServerConnection) -> None:
    _, _, role, session = ws.request.path.split("/", 3) if ws.request else ("", "", "", "")
    ends = sessions.setdefault(session, {})
    if role not in ("host", "viewer") or role in ends:
        await ws.close(4409)
        return
    ends[role] = ws
    other = "viewer" if role == "host" else "host"
    if other in ends:
        await ends[other].send("joined")
        await ws.send("joined")
    try:
        async for message in ws:
            peer = ends.get(other)
            if peer is not None and isinstance(message, bytes):
                await peer.send(message)
    finally:
        del ends[role]
        if not ends:
            del sessions[session]
        elif role == "host":
            await ends[other].close(4000)


async def main(port: int) -> None:
    async with serve(handler, "127.0.0.1", port, compression=None, max_size=2**20 + 64, ping_interval=None):
        print("ready", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
