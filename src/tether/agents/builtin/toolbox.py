"""Running the agent's tools on the ACP client: the host reads, writes and runs everything.

Every tool call is shown to the client as an ACP tool call (``tool_call`` then
``tool_call_update``s) with the model's id, so the transcript and the viewer show it as
it happens; edits and writes carry the diff, commands a live terminal. Before each edit,
write and command the client is asked (``session/request_permission``) unless the user
already answered "always" for that kind of tool in this session. A denial is a value:
the model reads that the user said no, and reacts.

Reads and writes are confined by the client, which checks every ``fs/*`` path. Listing and
searching run commands, and a client checks at most a command's folder, not its
arguments; so the agent itself refuses a ``path`` for them that leaves the project once
symlinks are followed, before any command runs.

Cancellation (ACP ``session/cancel``) arrives as CancelledError in whatever the tool is
awaiting; a running command is then killed through ``terminal/kill`` before the error
goes on, and the tool call is marked failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence
from typing import Any

from acp import RequestError
from acp.helpers import (
    ToolCallContentVariant,
    plan_entry,
    start_tool_call,
    text_block,
    tool_content,
    tool_diff_content,
    tool_terminal_ref,
    update_plan,
    update_tool_call,
)
from acp.interfaces import Client
from acp.schema import (
    ClientCapabilities,
    PlanEntryPriority,
    PlanEntryStatus,
    ToolCallLocation,
    ToolCallStatus,
    ToolCallUpdate,
    ToolKind,
)

from tether.agents.builtin import tools
from tether.agents.builtin.model import ToolCall, ToolResult, ToolSpec
from tether.errors import ToolError

_STATUSES: dict[str, PlanEntryStatus] = {"pending": "pending", "in_progress": "in_progress", "completed": "completed"}
_PRIORITIES: dict[str, PlanEntryPriority] = {"high": "high", "medium": "medium", "low": "low"}


def _reason(exc: RequestError) -> str:
    """The readable part of an ACP error from the client."""
    data = exc.data
    if isinstance(data, dict) and data.get("message"):
        return str(data["message"])
    return f"{exc} {data}" if data else str(exc)


def _string(arguments: dict[str, Any], key: str, default: str | None = None) -> str:
    value = arguments.get(key, default)
    if "_invalid_json" in arguments:
        raise ToolError(f"The arguments were not a JSON object: {arguments['_invalid_json'][:200]}")
    if not isinstance(value, str):
        raise ToolError(f"Missing or invalid argument {key!r}: a string is required.")
    return value


def _inside_project(cwd: str, path: str) -> str:
    """``path`` made absolute (``tools.resolve_path``); ToolError if it leaves ``cwd`` once symlinks are followed."""
    resolved = tools.resolve_path(cwd, path)
    root, real = os.path.realpath(cwd), os.path.realpath(resolved)
    if os.path.commonpath([root, real]) != root:
        raise ToolError(f"{path} is outside the project folder {cwd}: list and search only inside it.")
    return resolved


class Toolbox:
    """The tools of one session, run on its ACP client connection (see module doc)."""

    def __init__(
        self,
        client: Client,
        session_id: str,
        cwd: str,
        capabilities: ClientCapabilities | None,
        permissions: tools.Permissions,
    ) -> None:
        self.client = client
        self.session_id = session_id
        self.cwd = cwd
        self.permissions = permissions
        fs = capabilities.fs if capabilities else None
        can_read = bool(fs and fs.read_text_file)
        can_write = bool(fs and fs.write_text_file)
        can_run = bool(capabilities and capabilities.terminal)
        # ACP: an agent must not call a client method the client did not advertise.
        offered = {
            "read_file": can_read,
            "list_files": can_run,
            "search": can_run,
            "edit_file": can_read and can_write,
            "write_file": can_write,
            "run_command": can_run,
            "update_plan": True,
        }
        self.names = [name for name, ok in offered.items() if ok]

    def specs(self) -> list[ToolSpec]:
        """The tools this client can serve, as the model sees them."""
        return [tools.SPECS[name] for name in self.names]

    async def _update(self, call_id: str, status: ToolCallStatus | None = None, **fields: Any) -> None:
        await self.client.session_update(self.session_id, update_tool_call(call_id, status=status, **fields))

    async def run(self, call: ToolCall) -> ToolResult:
        """Run one tool call to its result; the result text is what the model reads next."""
        if call.name not in self.names:
            return ToolResult(call.id, f"Unknown tool {call.name!r}; the tools are: {', '.join(self.names)}.", True)
        if call.name == "update_plan":
            return await self._plan(call)
        kind = tools.KINDS[call.name]
        await self.client.session_update(
            self.session_id,
            start_tool_call(call.id, self._title(call), kind=kind, status="pending", raw_input=call.input),
        )
        try:
            handler = getattr(self, f"_{call.name}")
            text: str = await handler(call)
        except ToolError as exc:
            await self._update(call.id, "failed", content=[tool_content(text_block(str(exc)))])
            return ToolResult(call.id, str(exc), is_error=True)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._update(call.id, "failed", content=[tool_content(text_block("Stopped"))]))
            raise
        return ToolResult(call.id, text)

    def _title(self, call: ToolCall) -> str:
        arguments = call.input
        path = tools.display_path(self.cwd, tools.resolve_path(self.cwd, str(arguments.get("path") or ".")))
        titles = {
            "read_file": f"Read {path}",
            "list_files": f"List {arguments.get('pattern') or '*'} in {path}",
            "search": f"Search {arguments.get('pattern')!r} in {path}",
            "edit_file": f"Edit {path}",
            "write_file": f"Write {path}",
            "run_command": f"Run {str(arguments.get('command'))[:200]}",
        }
        return titles.get(call.name, call.name)

    async def _ask(self, call: ToolCall, kind: ToolKind, content: Sequence[ToolCallContentVariant] | None) -> None:
        """Ask before a change; ToolError with the user's answer when it is not an allow."""
        standing = self.permissions.standing(kind)
        if standing == "reject":
            raise ToolError("The user has rejected all actions of this kind for this session. Do not retry it.")
        if standing == "allow":
            return
        request = ToolCallUpdate(
            tool_call_id=call.id,
            title=self._title(call),
            kind=kind,
            status="pending",
            content=list(content) if content else None,
            raw_input=call.input,
        )
        response = await self.client.request_permission(self.session_id, request, tools.permission_options(kind))
        outcome = response.outcome
        if outcome.outcome == "selected":
            option_kind = {o.option_id: o.kind for o in tools.permission_options(kind)}.get(outcome.option_id, "")
            if self.permissions.record(kind, option_kind):
                return
        raise ToolError(
            "The user denied permission for this action. Do not try it again as is: "
            "ask the user how to proceed, or take another approach."
        )

    async def _read(self, path: str, line: int | None = None, limit: int | None = None) -> str:
        try:
            response = await self.client.read_text_file(self.session_id, path, line=line, limit=limit)
        except RequestError as exc:
            raise ToolError(f"Cannot read {path}: {_reason(exc)}") from None
        return response.content

    async def _write(self, path: str, content: str) -> None:
        try:
            await self.client.write_text_file(self.session_id, path, content)
        except RequestError as exc:
            raise ToolError(f"Cannot write {path}: {_reason(exc)}") from None

    async def _read_file(self, call: ToolCall) -> str:
        path = tools.resolve_path(self.cwd, _string(call.input, "path"))
        offset = call.input.get("offset")
        limit = call.input.get("limit")
        first = offset if isinstance(offset, int) and offset > 0 else 1
        count = limit if isinstance(limit, int) and 0 < limit <= tools.READ_LINES else tools.READ_LINES
        await self._update(call.id, "in_progress", locations=[ToolCallLocation(path=path, line=first)])
        # One line more than asked tells whether the file goes on.
        text = await self._read(path, line=first, limit=count + 1)
        lines = text.splitlines(keepends=True)
        shown = "".join(lines[:count])
        result = tools.number_lines(shown, first) if shown else "(no lines here: the file is empty or shorter)"
        if len(lines) > count:
            result += f"\n[file continues after line {first + count - 1}: read on with offset={first + count}]"
        await self._update(call.id, "completed")
        return result

    async def _edit_file(self, call: ToolCall) -> str:
        path = tools.resolve_path(self.cwd, _string(call.input, "path"))
        old, new = _string(call.input, "old_string"), _string(call.input, "new_string")
        before = await self._read(path)
        after, count = tools.apply_edit(before, old, new, call.input.get("replace_all") is True, path)
        diff = [tool_diff_content(path, after, before)]
        location = [ToolCallLocation(path=path)]
        await self._update(call.id, content=diff, locations=location)
        await self._ask(call, "edit", diff)
        await self._update(call.id, "in_progress")
        await self._write(path, after)
        await self._update(call.id, "completed", content=diff)
        return f"Edited {path}: replaced {count} occurrence{'s' if count > 1 else ''}."

    async def _write_file(self, call: ToolCall) -> str:
        path = tools.resolve_path(self.cwd, _string(call.input, "path"))
        content = _string(call.input, "content")
        before: str | None
        try:
            before = await self._read(path) if "read_file" in self.names else None
        except ToolError:
            before = None  # a new file: the diff shows it whole
        diff = [tool_diff_content(path, content, before)]
        await self._update(call.id, content=diff, locations=[ToolCallLocation(path=path)])
        await self._ask(call, "edit", diff)
        await self._update(call.id, "in_progress")
        await self._write(path, content)
        await self._update(call.id, "completed", content=diff)
        return f"{'Wrote' if before is None else 'Replaced'} {path} ({len(content.splitlines())} lines)."

    async def _terminal(
        self, call: ToolCall, command: str, args: list[str] | None, cwd: str, seconds: float, show: bool
    ) -> tuple[str, int | None, str | None, bool, bool]:
        """Run through ``terminal/*``: (output, exit code, signal, truncated, timed out)."""
        try:
            created = await self.client.create_terminal(
                self.session_id, command, args=args, cwd=cwd, output_byte_limit=tools.OUTPUT_LIMIT
            )
        except RequestError as exc:
            raise ToolError(f"Cannot run {command}: {_reason(exc)}") from None
        terminal_id = created.terminal_id
        if show:
            await self._update(call.id, "in_progress", content=[tool_terminal_ref(terminal_id)])
        timed_out = False
        try:
            try:
                await asyncio.wait_for(self.client.wait_for_terminal_exit(self.session_id, terminal_id), seconds)
            except TimeoutError:
                timed_out = True
                await self.client.kill_terminal(self.session_id, terminal_id)
            output = await self.client.terminal_output(self.session_id, terminal_id)
        except asyncio.CancelledError:
            # Stop pressed: the command must not outlive the turn (ACP terminal/kill).
            with contextlib.suppress(Exception):
                await asyncio.shield(self.client.kill_terminal(self.session_id, terminal_id))
            raise
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.client.release_terminal(self.session_id, terminal_id))
        status = output.exit_status
        code = status.exit_code if status else None
        signal = status.signal if status else None
        return output.output, code, signal, output.truncated, timed_out

    async def _run_command(self, call: ToolCall) -> str:
        command = _string(call.input, "command")
        raw_timeout = call.input.get("timeout_seconds")
        timeout = tools.COMMAND_TIMEOUT
        if isinstance(raw_timeout, int | float) and raw_timeout > 0:
            timeout = min(float(raw_timeout), tools.MAX_COMMAND_TIMEOUT)
        await self._ask(call, "execute", None)
        # A command line without args: clients run it through a shell, as agents send it.
        output, code, signal, truncated, timed_out = await self._terminal(
            call, command, None, self.cwd, timeout, show=True
        )
        if timed_out:
            head = f"Timed out after {timeout:g} s and was killed."
        elif signal:
            head = f"Killed by {signal}."
        else:
            head = f"Exit code: {code}"
        if truncated:
            head += f" (output cut: only its last {tools.OUTPUT_LIMIT // 1024} KB are kept)"
        ok = code == 0 and not timed_out
        await self._update(
            call.id,
            "completed" if ok else "failed",
            raw_output={"exit_code": code, "signal": signal, "timed_out": timed_out},
        )
        return f"{head}\n{output}" if output else f"{head}\n(no output)"

    async def _list_files(self, call: ToolCall) -> str:
        folder = _inside_project(self.cwd, _string(call.input, "path", "."))
        pattern = _string(call.input, "pattern", "*") or "*"
        output, code, _, truncated, _ = await self._terminal(
            call, "find", tools.find_argv(pattern), folder, tools.COMMAND_TIMEOUT, show=False
        )
        if code not in (0, None) and not output:
            raise ToolError(f"Cannot list {folder} (find exited with {code}).")
        entries, total = tools.filter_listing(output, pattern)
        await self._update(call.id, "completed", raw_output={"matches": total})
        if not entries:
            return f"No entries match {pattern!r} in {folder}."
        more = f"\n[{total - len(entries)} more not shown: narrow the pattern]" if total > len(entries) else ""
        cut = "\n[the listing was too long and is incomplete: narrow path or pattern]" if truncated else ""
        return "\n".join(entries) + more + cut

    async def _search(self, call: ToolCall) -> str:
        pattern = _string(call.input, "pattern")
        path = _inside_project(self.cwd, _string(call.input, "path", "."))
        include = call.input.get("include") if isinstance(call.input.get("include"), str) else None
        # Relative to the project, so the matches read `src/x.py:3:...`.
        target = tools.display_path(self.cwd, path)
        output, code, _, truncated, _ = await self._terminal(
            call, "grep", tools.grep_argv(pattern, target, include), self.cwd, tools.COMMAND_TIMEOUT, show=False
        )
        if code == 1:
            await self._update(call.id, "completed", raw_output={"matches": 0})
            return f"No matches for {pattern!r}."
        if code not in (0, None):
            raise ToolError(f"grep failed (exit code {code}): {output.strip()[:500]}")
        lines, total = tools.format_matches(output)
        await self._update(call.id, "completed", raw_output={"matches": total})
        more = f"\n[{total - tools.SEARCH_LIMIT} more matches not shown]" if total > tools.SEARCH_LIMIT else ""
        cut = "\n[output too long: only the last matches were kept; narrow the search]" if truncated else ""
        return lines + more + cut

    async def _plan(self, call: ToolCall) -> ToolResult:
        entries = call.input.get("entries")
        if not isinstance(entries, list):
            return ToolResult(call.id, "update_plan needs entries: a list of {content, status}.", True)
        plan = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("content"), str):
                return ToolResult(call.id, "Each plan entry needs a content string and a status.", True)
            status = _STATUSES.get(str(entry.get("status")), "pending")
            priority = _PRIORITIES.get(str(entry.get("priority")), "medium")
            plan.append(plan_entry(entry["content"], status=status, priority=priority))
        await self.client.session_update(self.session_id, update_plan(plan))
        return ToolResult(call.id, "Plan updated.")
