"""The transcript: the host's record of the conversation, the source of truth for viewers.

Pure: it takes ACP ``session/update`` payloads and local events in, and hands protocol
messages (``Entry``, ``Append``) out for whoever mirrors it (the terminal, the viewer).
``snapshot()`` gives everything so far to a viewer that joins late.

Streamed text is coalesced: consecutive chunks of the same role go into one message
entry, until something else (a tool call, a plan, a prompt) comes between them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from acp import schema

from tether.protocol.messages import Append, Entry, Message

JSON = dict[str, Any]
TerminalView = Callable[[str], JSON | None]


def _text_of(block: Any) -> str:
    """Text of an ACP content block; a short placeholder for non-text blocks."""
    if isinstance(block, schema.TextContentBlock):
        return block.text
    if isinstance(block, schema.ResourceContentBlock):
        return f"[{block.name}]({block.uri})"
    kind = getattr(block, "type", "content")
    return f"[{kind}]"


class Transcript:
    """Entries of one session in order of first appearance (see module doc).

    ``terminal_view(terminal_id)`` returns the live state of a terminal (command, output,
    exit code) so tool calls that embed a terminal show its output.
    """

    def __init__(self, terminal_view: TerminalView | None = None) -> None:
        self.entries: dict[str, JSON] = {}
        self._tool_content: dict[str, list[Any]] = {}
        self._ids = itertools.count(1)
        self._open_message: str | None = None
        self.terminal_view: TerminalView = terminal_view or (lambda terminal_id: None)
        # Last known state of each terminal: output stays visible after the agent releases it.
        self._terminals: dict[str, JSON] = {}

    def snapshot(self) -> list[JSON]:
        """Copies of every entry so far, oldest first (safe to serialize later)."""
        return [dict(entry) for entry in self.entries.values()]

    def _put(self, entry: JSON) -> Entry:
        self.entries[entry["id"]] = entry
        # A copy: the message may be serialized after later appends change the entry.
        return Entry(entry=dict(entry))

    def message(self, role: str, text: str) -> list[Message]:
        """A whole message at once (user prompt, system notice)."""
        self._open_message = None
        return [self._put({"id": f"m{next(self._ids)}", "type": "message", "role": role, "text": text})]

    def _stream(self, role: str, text: str) -> list[Message]:
        open_id = self._open_message
        if open_id is not None and self.entries[open_id]["role"] == role:
            self.entries[open_id]["text"] += text
            return [Append(id=open_id, text=text)]
        out = self.message(role, text)
        self._open_message = out[0].entry["id"]  # type: ignore[attr-defined]
        return out

    def apply(self, update: Any) -> list[Message]:
        """Fold one ACP session update in; the messages that mirror the change."""
        if isinstance(update, schema.AgentMessageChunk):
            return self._stream("agent", _text_of(update.content))
        if isinstance(update, schema.AgentThoughtChunk):
            return self._stream("thought", _text_of(update.content))
        if isinstance(update, schema.UserMessageChunk):
            return self._stream("user", _text_of(update.content))
        if isinstance(update, schema.ToolCallStart | schema.ToolCallProgress | schema.ToolCallUpdate):
            return [self._tool_call(update)]
        if isinstance(update, schema.AgentPlanUpdate):
            self._open_message = None
            plan = [{"content": e.content, "status": e.status, "priority": e.priority} for e in update.entries]
            return [self._put({"id": "plan", "type": "plan", "entries": plan})]
        # Mode, command and usage updates are not part of the transcript (yet).
        return []

    def _tool_call(self, update: schema.ToolCallStart | schema.ToolCallProgress | schema.ToolCallUpdate) -> Entry:
        self._open_message = None
        call_id = update.tool_call_id
        entry = self.entries.get(call_id) or {
            "id": call_id,
            "type": "tool_call",
            "title": "tool call",
            "kind": "other",
            "status": "pending",
            "locations": [],
            "content": [],
        }
        if update.title is not None:
            entry["title"] = update.title
        if update.kind is not None:
            entry["kind"] = update.kind
        if update.status is not None:
            entry["status"] = update.status
        if update.locations is not None:
            entry["locations"] = [loc.path for loc in update.locations]
        if update.content is not None:
            self._tool_content[call_id] = list(update.content)
        entry["content"] = self._render_content(call_id)
        return self._put(entry)

    def _render_content(self, call_id: str) -> list[JSON]:
        rendered: list[JSON] = []
        for item in self._tool_content.get(call_id, []):
            if isinstance(item, schema.FileEditToolCallContent):
                rendered.append(
                    {"type": "diff", "path": item.path, "old_text": item.old_text, "new_text": item.new_text}
                )
            elif isinstance(item, schema.TerminalToolCallContent):
                view = self.terminal_view(item.terminal_id) or self._terminals.get(item.terminal_id)
                view = view or {"command": "", "output": "", "exit_code": None, "truncated": False}
                self._terminals[item.terminal_id] = view
                rendered.append({"type": "terminal", "terminal_id": item.terminal_id, **view})
            else:
                rendered.append({"type": "text", "text": _text_of(item.content)})
        return rendered

    def terminal_changed(self, terminal_id: str) -> list[Message]:
        """Re-render the tool calls that show ``terminal_id`` (new output or exit)."""
        out: list[Message] = []
        for call_id, items in self._tool_content.items():
            if any(getattr(item, "terminal_id", None) == terminal_id for item in items):
                entry = self.entries[call_id]
                entry["content"] = self._render_content(call_id)
                out.append(self._put(entry))
        return out

    def put(self, entry: JSON) -> list[Message]:
        """Insert or replace an entry built elsewhere (an approval)."""
        if entry["id"] not in self.entries:
            self._open_message = None
        return [self._put(entry)]
