"""Keeping a long conversation under the model's context limit. Pure: messages in, messages out.

Tokens are estimated from characters (``chars_per_token``, 4 until the API's own count
of a real request corrects it: ``calibrate``). When the estimate passes the budget,
``fit`` trims until it is under TARGET of the budget, so that trimming happens once in a
while rather than on every request (and the provider's prompt cache survives between):

1. Old tool output goes first: outside the last KEEP_RECENT messages, each long tool
   result, and each long string in a tool call's input (a written file's content), keeps
   its first HEAD characters and a note of how much was cut. This is what fills a
   coding session, and the model can always read the file or run the command again.
2. Then whole old exchanges: the oldest (assistant, user) pair after the first message
   is dropped, again and again. Dropping a pair keeps the two rules both APIs enforce:
   roles alternate, and every tool call is answered in the very next message. The first
   message (the task as the user gave it) stays, with a note that messages were removed.
3. Last, tool output inside the recent messages too, except in the newest message.

What cannot be trimmed that way (a huge first prompt) is sent as is; the API then says
the context is too long, and the user reads that line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from tether.agents.builtin.model import Block, Message, Text, ToolResult, ToolUse

TARGET = 0.7
KEEP_RECENT = 6
HEAD = 400
# A block shorter than this is not worth trimming (the note itself is ~80 characters).
TRIM_THRESHOLD = HEAD + 200
MESSAGE_OVERHEAD = 4  # tokens: role and separators
DEFAULT_CHARS_PER_TOKEN = 4.0
NOTE_PREFIX = "[Context note: "


@dataclass(frozen=True, slots=True)
class Fitted:
    """The result of ``fit``: the messages to keep, and what was done to them."""

    messages: tuple[Message, ...]
    trimmed_blocks: int = 0
    dropped_messages: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.trimmed_blocks or self.dropped_messages)


def block_chars(block: Block) -> int:
    """Characters a block costs in a request (tool input as JSON)."""
    if isinstance(block, Text):
        return len(block.text)
    if isinstance(block, ToolUse):
        return len(block.name) + len(json.dumps(block.input))
    return len(block.content)


def estimate_tokens(messages: Sequence[Message], chars_per_token: float = DEFAULT_CHARS_PER_TOKEN) -> int:
    """Estimated tokens of ``messages``."""
    chars = sum(block_chars(b) for m in messages for b in m.blocks)
    return int(chars / chars_per_token) + MESSAGE_OVERHEAD * len(messages)


def calibrate(chars: int, input_tokens: int) -> float:
    """Characters per token as measured on one request, kept within sane bounds.

    Never above the default: an API that reports fewer tokens than we guessed must not
    make us trim later than the safe estimate.
    """
    if input_tokens <= 0 or chars <= 0:
        return DEFAULT_CHARS_PER_TOKEN
    return min(max(chars / input_tokens, 1.5), DEFAULT_CHARS_PER_TOKEN)


def _cut(text: str) -> str:
    return f"{text[:HEAD]}\n[trimmed to save context: {len(text) - HEAD} more characters removed]"


def _trim_value(value: Any) -> tuple[Any, bool]:
    if isinstance(value, str) and len(value) > TRIM_THRESHOLD:
        return _cut(value), True
    return value, False


def trim_block(block: Block) -> Block | None:
    """The block with its long tool output or tool input cut, or None if nothing was long."""
    if isinstance(block, ToolResult) and len(block.content) > TRIM_THRESHOLD:
        return replace(block, content=_cut(block.content))
    if isinstance(block, ToolUse):
        changed = False
        new_input: dict[str, Any] = {}
        for key, value in block.input.items():
            new_input[key], cut = _trim_value(value)
            changed = changed or cut
        return replace(block, input=new_input) if changed else None
    return None


def _with_note(first: Message, dropped: int) -> Message:
    note = Text(
        f"{NOTE_PREFIX}{dropped} earlier messages of this conversation, after this one, were removed "
        "to fit the context window.]"
    )
    blocks = tuple(b for b in first.blocks if not (isinstance(b, Text) and b.text.startswith(NOTE_PREFIX)))
    return replace(first, blocks=(*blocks, note))


def _previous_dropped(first: Message) -> int:
    for block in first.blocks:
        if isinstance(block, Text) and block.text.startswith(NOTE_PREFIX):
            count = block.text[len(NOTE_PREFIX) :].split(" ", 1)[0]
            return int(count) if count.isdigit() else 0
    return 0


def fit(
    messages: Sequence[Message],
    budget: int,
    chars_per_token: float = DEFAULT_CHARS_PER_TOKEN,
    keep_recent: int = KEEP_RECENT,
) -> Fitted:
    """``messages`` trimmed to TARGET of ``budget`` tokens if they exceed it (see module doc)."""
    kept = list(messages)
    if estimate_tokens(kept, chars_per_token) <= budget:
        return Fitted(tuple(kept))
    target = int(budget * TARGET)

    def over() -> bool:
        return estimate_tokens(kept, chars_per_token) > target

    trimmed = 0

    def trim_range(stop: int) -> None:
        nonlocal trimmed
        for index in range(stop):
            if not over():
                return
            blocks = list(kept[index].blocks)
            for position, block in enumerate(blocks):
                new = trim_block(block)
                if new is not None:
                    blocks[position] = new
                    trimmed += 1
            kept[index] = replace(kept[index], blocks=tuple(blocks))

    trim_range(max(len(kept) - keep_recent, 0))
    dropped = 0
    while over() and len(kept) - 3 >= keep_recent and kept[1].role == "assistant" and kept[2].role == "user":
        del kept[1:3]
        dropped += 2
    if dropped:
        kept[0] = _with_note(kept[0], _previous_dropped(kept[0]) + dropped)
    trim_range(len(kept) - 1)
    return Fitted(tuple(kept), trimmed_blocks=trimmed, dropped_messages=dropped)
