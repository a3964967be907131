"""The transcript: the host's record of the conversation, the source of truth for viewers.

Pure: it takes ACP ``session/update`` payloads and local events in, and hands protocol
messages (``Entry``, ``Append``, ``Output``) out for whoever mirrors it (the terminal, the
viewer). ``snapshot()`` gives a bounded copy of everything so far to a viewer that joins.

Namespaces: entries the agent names (its tool calls) get the id ``tool:<agent's id>``;
every entry the host owns (messages ``mN``, ``approval-N``, ``plan``, ``controls``,
``login``) has an id without that prefix, so no update from the agent can reach one.

Streamed text is coalesced: consecutive chunks of the same role go into one message
entry, until something else (a tool call, a plan, a prompt) comes between them.

Bounds: what one entry may carry is bounded (``MAX_TEXT`` per diff side or text item,
``OUTPUT_KEPT`` of command output per terminal), so no single message outgrows what a
viewer reassembles; a snapshot above ``SNAPSHOT_BUDGET`` leaves out the oldest entries and
says how many.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any

from acp import schema

from tether.protocol.messages import Append, Entry, Message, Output

JSON = dict[str, Any]
TOOL_PREFIX = "tool:"
MAX_TEXT = 256 * 1024  # characters of one diff side, or one text item, shown to screens
OUTPUT_KEPT = 64 * 1024  # characters of a command's output kept for screens (the newest)
SNAPSHOT_BUDGET = 8 * 1024 * 1024  # bytes of entries in one snapshot, newest kept first
UNASKED = "ACTED WITHOUT ASKING: "  # the title prefix of a tool call that changed something unasked


def tool_entry_id(tool_call_id: str) -> str:
    """The transcript id of the agent's tool call ``tool_call_id``."""
    return TOOL_PREFIX + tool_call_id


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` cut to ``limit`` characters with a visible note of what was left out."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… ({len(text) - limit} more characters not shown)"


def _text_of(block: Any) -> str:
    """Text of an ACP content block; a short placeholder for non-text blocks."""
    if isinstance(block, schema.TextContentBlock):
        return block.text
    if isinstance(block, schema.ResourceContentBlock):
        return f"[{block.name}]({block.uri})"
    kind = getattr(block, "type", "content")
    return f"[{kind}]"


@dataclass
class TerminalView:
    """What screens show of one command: the newest OUTPUT_KEPT characters of its output."""

    command: str
    output: str = ""
    exit_code: int | None = None
    truncated: bool = False

    def add(self, text: str) -> None:
        self.output += text
        if len(self.output) > OUTPUT_KEPT:
            self.output = self.output[-OUTPUT_KEPT:]
            self.truncated = True

    def to_json(self, terminal_id: str) -> JSON:
        return {"type": "terminal", "terminal_id": terminal_id, "command": self.command, "output": self.output,
                "exit_code": self.exit_code, "truncated": self.truncated}  # fmt: skip


class Transcript:
    """Entries of one session in order of first appearance (see module doc)."""

    def __init__(self) -> None:
        self.entries: dict[str, JSON] = {}
        self._tool_content: dict[str, list[Any]] = {}
        self._ids = itertools.count(1)
        self._open_message: str | None = None
        self.terminals: dict[str, TerminalView] = {}
        self._agent_terminals: dict[str, TerminalView] = {}  # by entry id: commands the agent ran itself
        # Tool call entry id -> (approvals opened, covered side effects) when it first appeared (modes.py guard).
        self.first_seen: dict[str, tuple[int, int]] = {}
        self.covered = 0  # writes and commands let through because an earlier approval covered them

    def snapshot(self, budget: int = SNAPSHOT_BUDGET) -> list[JSON]:
        """Copies of the newest entries that fit in ``budget`` bytes, oldest first.

        Entries left out are counted in a first ``system`` message, so a viewer knows.
        """
        kept: list[JSON] = []
        used = 0
        entries = list(self.entries.values())
        for entry in reversed(entries):
            size = len(json.dumps(entry, ensure_ascii=False))
            if used + size > budget and kept:
                break
            kept.append(dict(entry))
            used += size
        kept.reverse()
        left_out = len(entries) - len(kept)
        if left_out:
            note = f"{left_out} earlier entries are not shown here (the terminal has the whole session)."
            kept.insert(0, {"id": "m0", "type": "message", "role": "system", "text": note})
        return kept

    def _put(self, entry: JSON) -> Entry:
        self.entries[entry["id"]] = entry
        # A copy: the message may be serialized after later appends change the entry.
        return Entry(entry=dict(entry))

    def message(
        self, role: str, text: str, by: str | None = None, device: str | None = None,
        attachments: list[JSON] | None = None,
    ) -> list[Message]:
        """A whole message at once (user prompt, system notice); ``by`` names the screen of a prompt,
        ``device`` the paired device on it (``name (id)``), if it is one."""
        self._open_message = None
        entry: JSON = {"id": f"m{next(self._ids)}", "type": "message", "role": role, "text": text}
        if by is not None:
            entry["by"] = by
        if device is not None:
            entry["device"] = device
        if attachments:
            entry["attachments"] = attachments  # name, type and size of each file; never its bytes
        return [self._put(entry)]

    def _stream(self, role: str, text: str) -> list[Message]:
        open_id = self._open_message
        if open_id is not None and self.entries[open_id]["role"] == role:
            self.entries[open_id]["text"] += text
            return [Append(id=open_id, text=text)]
        out = self.message(role, text)
        self._open_message = next(reversed(self.entries))
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
            return self._output_only(update) or [self.tool_call(update)]
        if isinstance(update, schema.AgentPlanUpdate):
            self._open_message = None
            plan = [{"content": e.content, "status": e.status, "priority": e.priority} for e in update.entries]
            return [self._put({"id": "plan", "type": "plan", "entries": plan})]
        # Mode, command and usage updates are not part of the transcript (yet).
        return []

    def tool_call(self, update: schema.ToolCallStart | schema.ToolCallProgress | schema.ToolCallUpdate) -> Entry:
        """Insert or update the entry of one of the agent's tool calls."""
        self._open_message = None
        entry_id = tool_entry_id(update.tool_call_id)
        entry = self.entries.get(entry_id) or {
            "id": entry_id,
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
            self._tool_content[entry_id] = list(update.content)
        self._agent_terminal(entry_id, entry, update)
        if entry.get("unasked") and not entry["title"].startswith(UNASKED):
            entry["title"] = UNASKED + entry["title"]
        entry["content"] = self._render_content(entry_id)
        return self._put(entry)

    def _agent_terminal(self, entry_id: str, entry: JSON, update: Any) -> None:
        """A command the agent ran itself, reported in ``_meta`` (Codex: ``terminal_info``,
        ``terminal_output``, ``terminal_exit``): shown as command, output and exit code.

        Its terminal id is the agent's, kept apart from the host's own terminals so that no
        update can write into a command tether ran.
        """
        meta = update.field_meta if isinstance(update.field_meta, dict) else {}
        info, output, exited = (meta.get(k) for k in ("terminal_info", "terminal_output", "terminal_exit"))
        if not any(isinstance(part, dict) for part in (info, output, exited)):
            return
        view = self._agent_terminals.get(entry_id)
        if view is None:
            raw = update.raw_input if isinstance(update.raw_input, dict) else {}
            command = raw.get("command")
            command = " ".join(map(str, command)) if isinstance(command, list) else command
            view = self._agent_terminals[entry_id] = TerminalView(command=str(command or entry["title"]))
        if isinstance(output, dict) and isinstance(output.get("data"), str):
            view.add(output["data"])
        if isinstance(exited, dict):
            code = exited.get("exit_code")
            view.exit_code = code if isinstance(code, int) else -1

    def _output_only(self, update: Any) -> list[Message]:
        """An update that only brings new output of a command the agent runs itself: an ``Output`` delta."""
        entry_id = tool_entry_id(update.tool_call_id)
        view, entry = self._agent_terminals.get(entry_id), self.entries.get(entry_id)
        meta = update.field_meta if isinstance(update.field_meta, dict) else {}
        output = meta.get("terminal_output")
        changes = (update.title, update.kind, update.status, update.content, update.locations, update.raw_output)
        if view is None or entry is None or set(meta) != {"terminal_output"} or any(c is not None for c in changes):
            return []
        if not isinstance(output, dict) or not isinstance(output.get("data"), str):
            return []
        shown = next((c for c in entry["content"] if c.get("type") == "terminal"), None)
        if shown is None:
            return []
        view.add(output["data"])
        entry["content"] = self._render_content(entry_id)
        return [Output(id=entry_id, terminal_id=shown["terminal_id"], text=output["data"][-OUTPUT_KEPT:])]

    def close_open(self) -> list[Message]:
        """Close every tool call still pending or running (a turn ended): failed, "not run".

        Some agents send no final update for a denied or cancelled tool call (Gemini CLI);
        a card must not say "pending" after its turn.
        """
        out: list[Message] = []
        for entry_id, entry in self.entries.items():
            if entry.get("type") != "tool_call" or entry.get("status") not in ("pending", "in_progress"):
                continue
            was = entry["status"]
            entry["status"] = "failed"
            note = "not run" if was == "pending" else "did not finish"
            entry["closed_by_host"] = f"The turn ended with this tool call {was}: closed as {note}."
            view = self._agent_terminals.get(entry_id)
            if view is not None and view.exit_code is None:
                view.exit_code = -1
            entry["content"] = self._render_content(entry_id)
            out.append(self._put(entry))
        return out

    def flag_unasked(self, entry_id: str) -> list[Message]:
        """Mark a tool call that acted without a permission request, in its title on every screen."""
        entry = self.entries[entry_id]
        entry["unasked"] = True
        if not entry["title"].startswith(UNASKED):
            entry["title"] = UNASKED + entry["title"]
        return [self._put(entry)]

    def _render_content(self, entry_id: str) -> list[JSON]:
        rendered: list[JSON] = []
        agent_view = self._agent_terminals.get(entry_id)
        for item in self._tool_content.get(entry_id, []):
            if isinstance(item, schema.FileEditToolCallContent):
                old = None if item.old_text is None else clip(item.old_text)
                rendered.append({"type": "diff", "path": item.path, "old_text": old, "new_text": clip(item.new_text)})
            elif isinstance(item, schema.TerminalToolCallContent):
                if agent_view is not None and item.terminal_id not in self.terminals:
                    rendered.append(agent_view.to_json(item.terminal_id))
                    agent_view = None  # shown once
                    continue
                view = self.terminals.setdefault(item.terminal_id, TerminalView(command=""))
                rendered.append(view.to_json(item.terminal_id))
            else:
                rendered.append({"type": "text", "text": clip(_text_of(item.content))})
        if agent_view is not None:
            rendered.append(agent_view.to_json(""))
        note = self.entries.get(entry_id, {}).get("closed_by_host")
        if note:
            rendered.append({"type": "text", "text": note})
        return rendered

    def _showing(self, terminal_id: str) -> list[str]:
        return [
            entry_id
            for entry_id, items in self._tool_content.items()
            if any(getattr(item, "terminal_id", None) == terminal_id for item in items)
        ]

    def terminal_started(self, terminal_id: str, command: str) -> None:
        """A command started (``terminal/create``); tool calls may embed it from now on."""
        self.terminals[terminal_id] = TerminalView(command=command)

    def terminal_output(self, terminal_id: str, text: str) -> list[Message]:
        """New output of a command: appended to every tool call that shows it, as a delta."""
        view = self.terminals.setdefault(terminal_id, TerminalView(command=""))
        view.add(text)
        out: list[Message] = []
        for entry_id in self._showing(terminal_id):
            self.entries[entry_id]["content"] = self._render_content(entry_id)
            out.append(Output(id=entry_id, terminal_id=terminal_id, text=text[-OUTPUT_KEPT:]))
        return out

    def terminal_exited(self, terminal_id: str, exit_code: int) -> list[Message]:
        """The command ended: the tool calls that show it are sent whole, with the exit code."""
        view = self.terminals.setdefault(terminal_id, TerminalView(command=""))
        view.exit_code = exit_code
        out: list[Message] = []
        for entry_id in self._showing(terminal_id):
            entry = self.entries[entry_id]
            entry["content"] = self._render_content(entry_id)
            out.append(self._put(entry))
        return out

    def put(self, entry: JSON) -> list[Message]:
        """Insert or replace an entry the host owns (an approval, the controls, the login)."""
        if entry["id"].startswith(TOOL_PREFIX):
            raise ValueError(f"{entry['id']!r} is in the agent's namespace")
        if entry["id"] not in self.entries:
            self._open_message = None
        return [self._put(entry)]
