"""What a viewer coming back costs: the replay of what it missed against the whole transcript.

The pure session core (no sockets, no agent) plays a long session: PROMPTS turns, each a
streamed answer of WORDS chunks and a tool call. A viewer that applied everything up to a
point drops, MISSED more chunks arrive, it comes back with ``hello.since``: the bytes of the
``replay`` it gets are set against those of the ``snapshot`` it would have got (before
issue 10, every rejoin), and the time the host takes to build each.

Run: ``python benchmarks/rejoin_bytes.py``.
"""

from __future__ import annotations

import time

from acp import schema

from tether.host.core import events as ev
from tether.host.core.session import AgentInfo, SessionCore
from tether.protocol.messages import Hello, Prompt

PROMPTS = 200
WORDS = 100
MISSED = (0, 10, 100, 1000)


def chunk(text: str) -> ev.AgentUpdate:
    content = schema.TextContentBlock(type="text", text=text)
    return ev.AgentUpdate(schema.AgentMessageChunk(session_update="agent_message_chunk", content=content))


def main() -> None:
    core = SessionCore("/work/project", AgentInfo("bench", ("bench",)), lambda p: p, 600.0, run="bench")
    core.handle(ev.SessionOpened(), 0.0)
    for turn in range(PROMPTS):
        core.handle(ev.FromScreen("terminal", Prompt(text=f"question {turn}")), 0.0)
        for word in range(WORDS):
            core.handle(chunk(f"word{word} "), 0.0)
        call = schema.ToolCallStart(session_update="tool_call", tool_call_id=f"c{turn}", title="read", kind="read")
        core.handle(ev.AgentUpdate(call), 0.0)
        core.handle(ev.TurnEnded("end_turn"), 0.0)
    print(f"a session of {len(core.transcript.entries)} entries, {core.journal.head} numbered messages")
    for missed in MISSED:
        since = core.journal.head
        core.handle(ev.FromScreen("terminal", Prompt(text="more")), 0.0)
        for word in range(missed):
            core.handle(chunk(f"late{word} "), 0.0)
        core.handle(ev.TurnEnded("end_turn"), 0.0)
        started = time.perf_counter()
        (replay,) = core.handle(ev.FromScreen("viewer", Hello(since=since, run="bench")), 0.0)
        replay_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        (whole,) = core.handle(ev.FromScreen("viewer", Hello()), 0.0)
        whole_ms = (time.perf_counter() - started) * 1000
        replay_bytes = len(replay.message.serialize())  # type: ignore[union-attr]
        whole_bytes = len(whole.message.serialize())  # type: ignore[union-attr]
        print(f"missed {missed:5} chunks: replay {replay_bytes:9,} bytes ({replay_ms:5.2f} ms), "
              f"snapshot {whole_bytes:9,} bytes ({whole_ms:5.2f} ms)")  # fmt: skip


if __name__ == "__main__":
    main()
