"""A deterministic ACP agent for tether's tests: each prompt is one command.

Run as ``python tests/agents/scripted_agent.py``; stdout carries ACP JSON-RPC only, logs
go to stderr. Every side effect goes through the client (``fs/*``, ``terminal/*``), so
tests see exactly what the host allows.

::

    say <text>                stream <text> back, one word per chunk
    pace <ms> <text>          like say, <ms> milliseconds between chunks (a model that streams at its own pace)
    write <relpath> <text>    edit tool call with a diff, permission, fs/write_text_file if allowed;
                              replies "wrote <relpath>" | "denied <relpath>" | "failed <relpath>: ..." | "cancelled"
    run <shell command>       execute tool call, permission, terminal `sh -c <cmd>`; replies output + "exit <code>"
    slow <n>                  n chunks "tick i", 100 ms apart; session/cancel stops it
    plan                      a plan update with 3 entries
    escape <path>             fs/write_text_file outside the project, no permission; replies "refused: <error>"
    bigout <n>                like run, printing n bytes with an output limit of n // 2; replies "truncated=..."
    mode                      replies "mode <current mode id>"
    selfmode                  the agent switches itself to acceptEdits (a mode that approves by itself)
    crash                     the agent process exits at once with code 3
    sneakwrite <relpath> <t>  fs/write_text_file with no tool call and no permission; replies "wrote" | "failed: ..."
    sneakrun <shell command>  terminal `sh -c <cmd>` with no permission; replies output + "exit <code>" | "failed: ..."
    envrun <NAME=VALUE> <cmd> asks as `run` does, then runs <cmd> with NAME=VALUE added to its environment
    optmode                   a config_option_update moving the "mode" option (category mode) to acceptEdits
    forge <id> <title>        a tool_call_update for tool call <id> with a new title (e.g. an approval's id)
    nativewrite <relpath> <t> an edit tool call that writes the file itself, never asking, and completes
    leaveopen                 a tool call left pending and one left in_progress when the turn ends
    readmissing <relpath>     fs/read_text_file of a missing file; replies "read <n> characters" | "failed: ..."
    anything else             "unknown command"

Session modes: ``ask`` (default: asks before every edit) and ``acceptEdits`` (writes without
asking, as Claude Code's mode of that name does). ``session/load`` is supported (any id),
so a host can reattach after ``crash``. Started with ``--login``, the
agent advertises one agent-side auth method, ``scripted-login``, and refuses session/new
with ACP's auth-required error until ``authenticate`` is called with it. Started with
``--login-later``, it opens sessions but answers every prompt with that error until then
(as Claude Code does without a key).

Permission options are offered with ids that differ from their kinds on purpose
(``allow``, ``always``, ``reject``, ``reject-always``): a host must choose by kind and
answer with the agent's id. This agent never remembers an "always" answer, so every
step asks. A permission answered ``cancelled``, or a ``session/cancel``, ends the turn
with stop reason ``cancelled``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import re
import shlex
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal, cast

from acp import (
    PROTOCOL_VERSION,
    Agent,
    Client,
    RequestError,
    plan_entry,
    run_agent,
    start_tool_call,
    tool_diff_content,
    tool_terminal_ref,
    update_agent_message_text,
    update_plan,
    update_tool_call,
)
from acp.helpers import ContentBlock, ToolCallContentVariant
from acp.schema import (
    AgentCapabilities,
    AuthenticateResponse,
    AuthMethodAgent,
    ConfigOptionUpdate,
    CurrentModeUpdate,
    DeniedOutcome,
    EmbeddedResourceContentBlock,
    EnvVariable,
    ImageContentBlock,
    Implementation,
    InitializeResponse,
    LoadSessionResponse,
    NewSessionResponse,
    PermissionOption,
    PromptCapabilities,
    PromptResponse,
    SessionConfigOptionSelect,
    SessionConfigSelectOption,
    SessionMode,
    SessionModeState,
    SetSessionConfigOptionResponse,
    SetSessionModeResponse,
    StopReason,
    TextContentBlock,
    ToolCallLocation,
    ToolCallUpdate,
    ToolKind,
)

log = logging.getLogger("scripted_agent")

TICK = 0.1  # seconds between `slow` chunks
OUTPUT_BYTE_LIMIT = 64 * 1024
OPTIONS = (
    PermissionOption(option_id="allow", name="Allow", kind="allow_once"),
    PermissionOption(option_id="always", name="Always allow", kind="allow_always"),
    PermissionOption(option_id="reject", name="Reject", kind="reject_once"),
    PermissionOption(option_id="reject-always", name="Always reject", kind="reject_always"),
)
MODES = [
    SessionMode(id="ask", name="Ask", description="asks before every edit and command"),
    SessionMode(id="acceptEdits", name="Accept edits", description="writes files without asking"),
]
NEEDS_LOGIN = "--login" in sys.argv
LOGIN_LATER = "--login-later" in sys.argv  # sessions open, but prompts answer auth-required until a login
REFUSE_OPTIONS = "--refuse-options" in sys.argv


def mode_options(current: str) -> list[SessionConfigOptionSelect]:
    """The session mode again, as a config option of category ``mode`` (as Claude Code sends it)."""
    choices = [SessionConfigSelectOption(value=m.id, name=m.name) for m in MODES]
    return [SessionConfigOptionSelect(id="mode", name="Mode", category="mode", type="select", current_value=current,
                                      options=choices)]  # fmt: skip


ALLOWING = frozenset(o.option_id for o in OPTIONS if o.kind.startswith("allow"))

Decision = Literal["allowed", "denied", "cancelled"]



def described(block: Any) -> str:
    """An image or embedded file of a prompt in a few words: kind, name, type, size and a digest of its bytes."""
    if isinstance(block, ImageContentBlock):
        data = base64.b64decode(block.data)
        return f"image {block.uri} {block.mime_type} {len(data)} bytes sha256:{hashlib.sha256(data).hexdigest()[:12]}"
    if isinstance(block, EmbeddedResourceContentBlock):
        resource = block.resource
        data = resource.text.encode() if hasattr(resource, "text") else base64.b64decode(resource.blob)
        return (f"file {resource.uri} {resource.mime_type} {len(data)} bytes "
                f"sha256:{hashlib.sha256(data).hexdigest()[:12]}")  # fmt: skip
    return f"unknown block {type(block).__name__}"

class Cancelled(Exception):
    """The client answered a permission request with ``cancelled``: end the turn."""


def error_text(error: RequestError) -> str:
    """``message: detail`` from an ACP error, the detail as the client gave it."""
    detail = (error.data.get("message") or error.data.get("details")) if isinstance(error.data, dict) else None
    return f"{error}: {detail}" if detail else str(error)


class Turn:
    """One prompt: parses the command and runs it against the client."""

    def __init__(self, client: Client, session_id: str, cwd: Path, text: str, modes: dict[str, str]) -> None:
        self.client = client
        self.modes = modes
        self.session_id = session_id
        self.cwd = cwd
        self.text = text.strip()
        self.call_id = f"call-{uuid.uuid4().hex[:8]}"
        self.call_open = False

    async def run(self) -> StopReason:
        """Dispatch on the first word; a cancelled permission ends the turn as cancelled."""
        name, _, rest = self.text.partition(" ")
        handlers: dict[str, Callable[[str], Awaitable[None]]] = {
            "say": self.say,
            "pace": self.pace,
            "write": self.write,
            "run": self.run_command,
            "slow": self.slow,
            "plan": self.plan,
            "escape": self.escape,
            "bigout": self.bigout,
            "mode": self.mode,
            "selfmode": self.selfmode,
            "crash": self.crash,
            "sneakwrite": self.sneakwrite,
            "sneakrun": self.sneakrun,
            "envrun": self.envrun,
            "optmode": self.optmode,
            "forge": self.forge,
            "nativewrite": self.nativewrite,
            "leaveopen": self.leaveopen,
            "readmissing": self.readmissing,
        }
        handler = handlers.get(name)
        try:
            await (handler(rest.strip()) if handler else self.reply("unknown command"))
        except Cancelled:
            return "cancelled"
        return "end_turn"

    async def abandon(self) -> None:
        """After a cancel: fail the open tool call and say "cancelled" (before the prompt answer, as ACP asks)."""
        with contextlib.suppress(ConnectionError, RequestError):
            if self.call_open:
                await self.finish(False)
            await self.reply("cancelled")

    # -- plumbing ------------------------------------------------------------------------

    async def send(self, update: Any) -> None:
        """One ``session/update`` for this session."""
        await self.client.session_update(session_id=self.session_id, update=update)

    async def reply(self, text: str) -> None:
        """The final agent message of a command, in one chunk."""
        await self.send(update_agent_message_text(text))

    async def ask(self, kind: ToolKind, title: str, content: list[ToolCallContentVariant] | None = None) -> bool:
        """Request permission for the current tool call; True if an allow option was chosen."""
        tool_call = ToolCallUpdate(tool_call_id=self.call_id, kind=kind, title=title, status="pending", content=content)
        response = await self.client.request_permission(
            session_id=self.session_id, tool_call=tool_call, options=list(OPTIONS)
        )
        if isinstance(response.outcome, DeniedOutcome):
            raise Cancelled
        return response.outcome.option_id in ALLOWING

    async def finish(self, ok: bool, **changes: Any) -> None:
        """Close the current tool call as completed or failed."""
        await self.send(update_tool_call(self.call_id, status="completed" if ok else "failed", **changes))
        self.call_open = False

    async def start(self, title: str, kind: ToolKind, **fields: Any) -> None:
        """Announce the turn's tool call as pending."""
        await self.send(start_tool_call(self.call_id, title, kind=kind, status="pending", **fields))
        self.call_open = True

    async def terminal(self, command: str, limit: int, env: dict[str, str] | None = None) -> tuple[str, bool, str]:
        """Run ``sh -c command`` in a client terminal shown in the tool call: (output, truncated, exit)."""
        variables = [EnvVariable(name=k, value=v) for k, v in (env or {}).items()]
        created = await self.client.create_terminal(
            session_id=self.session_id, command="sh", args=["-c", command], cwd=str(self.cwd), output_byte_limit=limit,
            env=variables or None,
        )  # fmt: skip
        terminal_id = created.terminal_id
        try:
            await self.send(
                update_tool_call(self.call_id, status="in_progress", content=[tool_terminal_ref(terminal_id)])
            )
            exited = await self.client.wait_for_terminal_exit(session_id=self.session_id, terminal_id=terminal_id)
            output = await self.client.terminal_output(session_id=self.session_id, terminal_id=terminal_id)
        finally:
            with contextlib.suppress(ConnectionError, RequestError):
                await self.client.release_terminal(session_id=self.session_id, terminal_id=terminal_id)
        status = f"exit {exited.exit_code}" if exited.signal is None else f"signal {exited.signal}"
        await self.finish(exited.exit_code == 0)
        return output.output, output.truncated, status

    async def execute(self, command: str, limit: int) -> tuple[str, bool, str] | None:
        """Announce an execute tool call, ask, and run it; None if denied."""
        title = f"Run `{command}`"
        await self.start(title, "execute", raw_input={"command": command})
        if not await self.ask("execute", title):
            await self.finish(False)
            return None
        return await self.terminal(command, limit)

    # -- commands ------------------------------------------------------------------------

    async def mode(self, _: str) -> None:
        """``mode``: the current session mode."""
        await self.reply(f"mode {self.modes.get(self.session_id, 'ask')}")

    async def selfmode(self, _: str) -> None:
        """``selfmode``: switch to acceptEdits on the agent's own initiative, and say so."""
        self.modes[self.session_id] = "acceptEdits"
        await self.send(CurrentModeUpdate(session_update="current_mode_update", current_mode_id="acceptEdits"))
        await self.reply("switched to acceptEdits")

    async def sneakwrite(self, args: str) -> None:
        """``sneakwrite``: a write the agent never asked about (the host must ask itself)."""
        relpath, _, content = args.partition(" ")
        try:
            await self.client.write_text_file(session_id=self.session_id, path=str(self.cwd / relpath), content=content)
        except RequestError as error:
            await self.reply(f"failed: {error_text(error)}")
            return
        await self.reply(f"wrote {relpath}")

    async def sneakrun(self, command: str) -> None:
        """``sneakrun``: a command the agent never asked about (the host must ask itself)."""
        await self.start(f"Run `{command}`", "execute")
        try:
            output, _, status = await self.terminal(command, OUTPUT_BYTE_LIMIT)
        except RequestError as error:
            await self.finish(False)
            await self.reply(f"failed: {error_text(error)}")
            return
        await self.reply(f"{output}{status}")

    async def envrun(self, args: str) -> None:
        """``envrun``: ask for a command, then run it with a variable the approval did not show."""
        assignment, _, command = args.partition(" ")
        name, _, value = assignment.partition("=")
        title = f"Run `{command}`"
        await self.start(title, "execute", raw_input={"command": command})
        if not await self.ask("execute", title):
            await self.finish(False)
            await self.reply(f"denied {command}")
            return
        try:
            output, _, status = await self.terminal(command, OUTPUT_BYTE_LIMIT, {name: value})
        except RequestError as error:
            await self.finish(False)
            await self.reply(f"failed: {error_text(error)}")
            return
        await self.reply(f"{output}{status}")

    async def optmode(self, _: str) -> None:
        """``optmode``: the same self-approving switch as ``selfmode``, sent as a config option."""
        self.modes[self.session_id] = "acceptEdits"
        await self.send(
            ConfigOptionUpdate(session_update="config_option_update", config_options=mode_options("acceptEdits"))
        )
        await self.reply("switched to acceptEdits")

    async def forge(self, args: str) -> None:
        """``forge``: rewrite the title of any tool call id, e.g. one the host uses for an approval."""
        call_id, _, title = args.partition(" ")
        await self.send(update_tool_call(call_id, title=title))
        await self.reply("forged")

    async def nativewrite(self, args: str) -> None:
        """``nativewrite``: edit the file directly, as agents with native tools do, with no permission request."""
        relpath, _, content = args.partition(" ")
        await self.start(f"Write {relpath}", "edit", locations=[ToolCallLocation(path=str(self.cwd / relpath))])
        (self.cwd / relpath).write_text(content)
        await self.finish(True)
        await self.reply(f"wrote {relpath} without asking")

    async def leaveopen(self, _: str) -> None:
        """``leaveopen``: two tool calls that never get a final update (as Gemini CLI's denied ones)."""
        await self.send(start_tool_call(f"{self.call_id}-p", "Write later.txt", kind="edit", status="pending"))
        await self.send(start_tool_call(f"{self.call_id}-r", "Run make", kind="execute", status="in_progress"))
        await self.reply("left two tool calls open")

    async def readmissing(self, relpath: str) -> None:
        """``readmissing``: what the client answers for a file that does not exist."""
        try:
            read = await self.client.read_text_file(session_id=self.session_id, path=str(self.cwd / relpath))
        except RequestError as error:
            await self.reply(f"failed: {error_text(error)}")
            return
        await self.reply(f"read {len(read.content)} characters")

    async def crash(self, _: str) -> None:
        """``crash``: the process dies mid-turn."""
        log.info("crashing on purpose")
        os._exit(3)

    async def say(self, text: str) -> None:
        """``say``: one chunk per word, whitespace kept, so the chunks join back to ``text``."""
        for word in re.findall(r"\s*\S+", text):
            await self.send(update_agent_message_text(word))

    async def pace(self, args: str) -> None:
        """``pace``: ``say`` with a pause between chunks."""
        ms, _, text = args.partition(" ")
        for word in re.findall(r"\s*\S+", text):
            await self.send(update_agent_message_text(word))
            await asyncio.sleep(int(ms) / 1000)

    async def write(self, args: str) -> None:
        """``write``: diff, permission, then fs/write_text_file only if allowed."""
        relpath, _, content = args.partition(" ")
        if not relpath:
            await self.reply("usage: write <relpath> <content>")
            return
        path = self.cwd / relpath
        try:
            # A missing file reads as empty (as in Zed): shown as a new file.
            old: str | None = (await self.client.read_text_file(session_id=self.session_id, path=str(path))).content
            old = old or None
        except RequestError as error:
            log.info("no old content for %s: %s", path, error_text(error))
            old = None
        diff: list[ToolCallContentVariant] = [tool_diff_content(str(path), content, old)]
        title = f"Write {relpath}"
        await self.start(
            title,
            "edit",
            content=diff,
            locations=[ToolCallLocation(path=str(path))],
            raw_input={"path": str(path), "content": content},
        )
        # acceptEdits writes without asking: the mode a host must refuse under Remote Control.
        if self.modes.get(self.session_id) != "acceptEdits" and not await self.ask("edit", title, diff):
            await self.finish(False)
            await self.reply(f"denied {relpath}")
            return
        try:
            await self.client.write_text_file(session_id=self.session_id, path=str(path), content=content)
        except RequestError as error:
            await self.finish(False)
            await self.reply(f"failed {relpath}: {error_text(error)}")
            return
        await self.finish(True)
        await self.reply(f"wrote {relpath}")

    async def run_command(self, command: str) -> None:
        """``run``: permission, then the command in a client terminal."""
        result = await self.execute(command, OUTPUT_BYTE_LIMIT)
        if result is None:
            await self.reply(f"denied {command}")
            return
        output, _, status = result
        separator = "" if not output or output.endswith("\n") else "\n"
        await self.reply(f"{output}{separator}{status}")

    async def slow(self, count: str) -> None:
        """``slow``: ticks 100 ms apart, for cancellation tests."""
        for i in range(1, int(count or "1") + 1):
            await self.send(update_agent_message_text(f"tick {i}\n"))
            await asyncio.sleep(TICK)

    async def plan(self, _: str) -> None:
        """``plan``: one plan update with 3 entries."""
        entries = [
            plan_entry("read the code", status="completed"),
            plan_entry("change it", status="in_progress"),
            plan_entry("run the tests", status="pending"),
        ]
        await self.send(update_plan(entries))

    async def escape(self, target: str) -> None:
        """``escape``: write outside the project and report the client's refusal."""
        # Deliberately no tool call and no permission: this probes the host's own boundary.
        path = Path(target) if Path(target).is_absolute() else self.cwd / target
        try:
            await self.client.write_text_file(session_id=self.session_id, path=str(path), content="escaped\n")
        except RequestError as error:
            await self.reply(f"refused: {error_text(error)}")
            return
        await self.reply(f"escaped: wrote {path}")

    async def bigout(self, count: str) -> None:
        """``bigout``: more output than the terminal's byte limit; report the truncated flag."""
        size = int(count or "0")
        result = await self.execute(f"head -c {size} /dev/zero | tr '\\0' x", max(1, size // 2))
        if result is None:
            await self.reply(f"denied bigout {size}")
            return
        output, truncated, _ = result
        await self.reply(f"truncated={str(truncated).lower()} bytes={len(output.encode())}")


class ScriptedAgent:
    """ACP agent side: sessions, one running Turn per session, cancellation."""

    def __init__(self) -> None:
        self.cwds: dict[str, Path] = {}
        self.modes: dict[str, str] = {}
        self.logged_in = False
        self.turns: dict[str, asyncio.Task[StopReason]] = {}
        self._client: Client | None = None

    def on_connect(self, conn: Client) -> None:
        """Keep the connection to the client."""
        self._client = conn

    async def initialize(self, protocol_version: int, **kwargs: Any) -> InitializeResponse:
        """ACP v1, agent name ``tether-scripted``; session/load; a login method if asked for."""
        methods = [AuthMethodAgent(id="scripted-login", name="Scripted login")] if NEEDS_LOGIN or LOGIN_LATER else []
        return InitializeResponse(
            protocol_version=PROTOCOL_VERSION,
            agent_capabilities=AgentCapabilities(
                load_session=True, prompt_capabilities=PromptCapabilities(image=True, embedded_context=True)
            ),
            agent_info=Implementation(name="tether-scripted", version="1"),
            auth_methods=methods,
        )

    async def authenticate(self, method_id: str, **kwargs: Any) -> AuthenticateResponse:
        """Accept ``scripted-login`` only."""
        if method_id != "scripted-login":
            raise RequestError.invalid_params({"message": f"unknown method {method_id}"})
        self.logged_in = True
        return AuthenticateResponse()

    def _modes(self, session_id: str) -> SessionModeState:
        return SessionModeState(current_mode_id=self.modes.get(session_id, "ask"), available_modes=MODES)

    async def new_session(self, cwd: str, **kwargs: Any) -> NewSessionResponse:
        """A session rooted at ``cwd``, in mode ``ask``."""
        if NEEDS_LOGIN and not self.logged_in:
            raise RequestError.auth_required({"message": "log in with scripted-login first"})
        session_id = f"scripted-{uuid.uuid4().hex}"
        self.cwds[session_id] = Path(cwd)
        return NewSessionResponse(session_id=session_id, modes=self._modes(session_id))

    async def load_session(self, cwd: str, session_id: str, **kwargs: Any) -> LoadSessionResponse:
        """Reattach to ``session_id`` (this agent keeps no history, so any id is accepted)."""
        self.cwds[session_id] = Path(cwd)
        return LoadSessionResponse(modes=self._modes(session_id))

    async def set_session_mode(self, session_id: str, mode_id: str, **kwargs: Any) -> SetSessionModeResponse:
        """Switch between ``ask`` and ``acceptEdits`` (``--refuse-options``: refused, as option changes are)."""
        if mode_id not in {m.id for m in MODES} or REFUSE_OPTIONS:
            raise RequestError.invalid_params({"message": f"unknown mode {mode_id}"})
        self.modes[session_id] = mode_id
        return SetSessionModeResponse()

    async def set_config_option(
        self, config_id: str, session_id: str, value: str | bool, **kwargs: Any
    ) -> SetSessionConfigOptionResponse:
        """Only ``mode``; set ``--refuse-options`` to make it fail (a host must then end Remote Control)."""
        if config_id != "mode" or value not in {m.id for m in MODES} or REFUSE_OPTIONS:
            raise RequestError.invalid_params({"message": f"cannot set {config_id} to {value}"})
        self.modes[session_id] = str(value)
        return SetSessionConfigOptionResponse(config_options=mode_options(str(value)))

    async def prompt(self, session_id: str, prompt: list[ContentBlock], **kwargs: Any) -> PromptResponse:
        """Run one command as its own task, so that cancel() can interrupt any await in it."""
        if session_id not in self.cwds:
            raise RequestError.invalid_params({"message": f"unknown session {session_id}"})
        if self._client is None:
            raise RuntimeError("not connected")
        if LOGIN_LATER and not self.logged_in:
            raise RequestError.auth_required({"message": "log in with scripted-login first"})
        text = "".join(block.text for block in prompt if isinstance(block, TextContentBlock))
        log.info("prompt %r", text)
        received = [described(block) for block in prompt if not isinstance(block, TextContentBlock)]
        if received:  # what came with the prompt, said back so that tests can see it arrived whole
            update = update_agent_message_text("received " + "; ".join(received) + ("\n" if text else ""))
            await self._client.session_update(session_id=session_id, update=update)
            if not text:
                return PromptResponse(stop_reason="end_turn")
        turn = Turn(self._client, session_id, self.cwds[session_id], text, self.modes)
        task = self.turns[session_id] = asyncio.create_task(turn.run())
        try:
            stop_reason = await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the connection is closing
            stop_reason = "cancelled"
        finally:
            self.turns.pop(session_id, None)
        if stop_reason == "cancelled":
            await turn.abandon()
        return PromptResponse(stop_reason=stop_reason)

    async def cancel(self, session_id: str, **kwargs: Any) -> None:
        """ACP ``session/cancel``: stop the running turn."""
        task = self.turns.get(session_id)
        if task is not None:
            log.info("cancel %s", session_id)
            task.cancel()


def main() -> None:
    """Serve ACP on stdin/stdout; logs on stderr."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="scripted-agent: %(message)s")
    log.info("argv %s", shlex.join(sys.argv))
    with contextlib.suppress(KeyboardInterrupt):
        # The SDK's Agent protocol lists every optional method; missing ones get "method not found".
        asyncio.run(run_agent(cast(Agent, ScriptedAgent())))


if __name__ == "__main__":
    main()
