"""The journal: the host's numbered record of recent transcript changes, for viewers that come back.

Pure, no clock, no I/O. Rule: every message that changes what screens mirror (``entry``,
``append``, ``output``, ``turn``) gets the next number ``n`` (1, 2, ...) of this host run,
and the newest of them are kept, at most ``MAX_MESSAGES`` and ``MAX_BYTES`` of payload. A
viewer that applied everything up to ``n = since`` and comes back asks for what followed:

::

    since == head                 -> nothing missed: an empty replay
    base <= since < head          -> the messages since+1 .. head, in order (a replay)
    since < base                  -> they are gone from the journal: the whole transcript ("behind")
    since > head                  -> a count this run never reached: the whole transcript ("ahead")
    another run id                -> the whole transcript ("run")

``base`` is the ``n`` before the oldest message kept (0 while nothing was dropped). The
transcript stays the source of truth: a replay is only a shorter way to the same state,
and whenever the journal cannot give it, the viewer gets the transcript afresh.

``RecentIds`` is the bounded memory of prompt ids the host took, so that a prompt sent
again after a reconnection (the viewer cannot know whether it arrived) runs once.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, deque
from dataclasses import replace

from tether.protocol.messages import NUMBERED, Append, Message

MAX_MESSAGES = 4096  # transcript messages kept for replay
MAX_BYTES = 8 * 1024 * 1024  # of their payloads; past either bound the oldest go (a later viewer gets a snapshot)
PROMPT_IDS = 1024  # prompt ids remembered; a resend older than that many prompts would run again
RECEIVED_SHOWN = 64  # prompt ids told to a viewer that comes back (its own unconfirmed ones are the newest)


class Journal:
    """Numbered transcript messages of one host run (see module doc)."""

    def __init__(self, run: str, max_messages: int = MAX_MESSAGES, max_bytes: int = MAX_BYTES) -> None:
        self.run = run
        self.head = 0  # the n of the newest message recorded
        self.base = 0  # the n just before the oldest message kept
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._kept: deque[tuple[Message, int]] = deque()  # (message with its n, payload size)
        self._bytes = 0

    def record(self, message: Message) -> Message:
        """``message`` numbered, if it is a transcript change (kept for replay); any other message as it is."""
        if message.KIND not in NUMBERED:
            return message
        self.head += 1
        numbered = replace(message, n=self.head)  # type: ignore[call-arg]
        size = len(numbered.serialize())
        self._kept.append((numbered, size))
        self._bytes += size
        while self._kept and (len(self._kept) > self.max_messages or self._bytes > self.max_bytes):
            _, dropped = self._kept.popleft()
            self._bytes -= dropped
            self.base += 1
        return numbered

    def since(self, since: int, run: str | None) -> list[Message] | str:
        """The messages after ``since`` of run ``run``; or why they cannot be given (``behind``, ``ahead``, ``run``)."""
        if run != self.run:
            return "run"
        if since > self.head:
            return "ahead"
        if since < self.base:
            return "behind"
        return [message for message, _ in itertools.islice(self._kept, since - self.base, None)]


def compact(messages: list[Message]) -> list[Message]:
    """Consecutive appends to one message as one append, numbered as the last of them (a replay is applied whole,
    so the numbers in between need not be seen): a long streamed answer replays in a fraction of its chunks."""
    out: list[Message] = []
    for message in messages:
        last = out[-1] if out else None
        if isinstance(message, Append) and isinstance(last, Append) and last.id == message.id:
            out[-1] = replace(last, text=last.text + message.text, n=message.n)
        else:
            out.append(message)
    return out


class RecentIds:
    """The newest ``limit`` ids seen, oldest forgotten first."""

    def __init__(self, limit: int = PROMPT_IDS) -> None:
        self.limit = limit
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, item: str) -> bool:
        """Remember ``item``; False if it was seen already (then nothing changes)."""
        if item in self._ids:
            return False
        self._ids[item] = None
        if len(self._ids) > self.limit:
            self._ids.popitem(last=False)
        return True

    def __contains__(self, item: object) -> bool:
        return item in self._ids

    def newest(self, count: int = RECEIVED_SHOWN) -> list[str]:
        """The ``count`` newest ids, oldest first."""
        return list(self._ids)[-count:] if count else []
