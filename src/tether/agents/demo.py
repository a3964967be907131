"""tether's demo agent: a guided tour of tether with no model and no API key behind it.

Run it as ``python -m tether.agents.demo`` (``tether demo`` and ``--agent demo`` do).
It speaks real ACP v1 over stdio, so the tour goes through exactly the paths a real
agent uses, and the host keeps control of every side effect:

::

    stream the intro ─> plan (3 entries) ─> edit TETHER_DEMO.md ─> run `ls -la` ─> how to use a real agent
                        statuses advance    diff, permission,      terminal, permission,
                        step by step        fs/write_text_file     terminal/* on the client

A denied step is marked ``failed``, said so in text, and the tour goes on. A
``session/cancel`` (or a permission answered ``cancelled``) ends the turn at once with
stop reason ``cancelled``. Choosing an "always" option is remembered per tool kind for
the rest of the session, as real agents do.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
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
from acp.helpers import ContentBlock, SessionUpdate, ToolCallContentVariant
from acp.schema import (
    AgentCapabilities,
    ClientCapabilities,
    DeniedOutcome,
    Implementation,
    InitializeResponse,
    NewSessionResponse,
    PermissionOption,
    PromptResponse,
    StopReason,
    TextContentBlock,
    ToolCallLocation,
    ToolCallStatus,
    ToolCallUpdate,
    ToolKind,
)

import tether

log = logging.getLogger("tether.agents.demo")

DEMO_FILE = "TETHER_DEMO.md"
COMMAND = "ls"
COMMAND_ARGS = ("-la",)
SHOWN_COMMAND = " ".join((COMMAND, *COMMAND_ARGS))
OUTPUT_BYTE_LIMIT = 16 * 1024
WORDS_PER_CHUNK = 5
# Seconds between chunks: long enough to see the text stream in, short enough for a
# turn of about 2 s. A fixed cycle rather than random jitter keeps runs reproducible.
CHUNK_DELAYS = (0.03, 0.05, 0.08, 0.04, 0.06)
# ACP has no error code for a missing file; tether's host answers "Resource not found"
# (-32002), other editors an internal error whose text says so.
NOT_FOUND_CODE = -32002
NOT_FOUND_WORDS = ("not found", "no such file", "does not exist", "enoent")

# All four ACP option kinds, so a newcomer sees every choice the host can offer.
OPTIONS = (
    PermissionOption(option_id="allow-once", name="Allow once", kind="allow_once"),
    PermissionOption(option_id="allow-always", name="Always allow (this session)", kind="allow_always"),
    PermissionOption(option_id="reject-once", name="Reject", kind="reject_once"),
    PermissionOption(option_id="reject-always", name="Always reject (this session)", kind="reject_always"),
)

PLAN = (
    "Say hello and explain the tour",
    f"Propose an edit to {DEMO_FILE}",
    f"Run `{SHOWN_COMMAND}` in the project folder",
)

FIRST_INTRO = (
    "This is tether's DEMO agent: no model is behind it, so it does not read your prompt and "
    "plays the same short tour each time. All of it travels over the real Agent Client Protocol: "
    "streamed text, a plan, then an edit and a command that only happen once you approve them. "
    "You wrote: {excerpt}"
)
LATER_INTRO = (
    "DEMO agent again (turn {turn}, still no model behind it). Same tour, so you can try other "
    "answers: allow once, always allow, reject, always reject. You wrote: {excerpt}"
)
OUTRO = (
    "That is the tour. For a real coding agent, start tether with one: `tether --agent claude`, "
    '`tether --agent codex`, `tether --agent gemini`, or any ACP command: `tether --agent "my-agent --acp"`. '
    f"Add `--remote`, or run `tether rc`, to drive it from your phone. Delete {DEMO_FILE} whenever you like."
)

Decision = Literal["allowed", "rejected", "cancelled"]


@dataclass(frozen=True, slots=True)
class Answer:
    """The outcome of a permission step; ``remembered`` when an earlier "always" answered it."""

    decision: Decision
    remembered: bool = False


@dataclass(slots=True)
class DemoSession:
    """One ACP session: its folder, its turn count and the "always" answers given so far."""

    id: str
    cwd: Path
    turns: int = 0
    # Tool kind -> remembered decision, from allow_always / reject_always (mutable on purpose).
    always: dict[ToolKind, Decision] = field(default_factory=dict)
    turn: asyncio.Task[StopReason] | None = None


def prompt_text(blocks: list[ContentBlock]) -> str:
    """The text of a prompt; images, audio and resources are ignored by the demo."""
    return "".join(block.text for block in blocks if isinstance(block, TextContentBlock))


def excerpt(text: str, width: int = 60) -> str:
    """The first line of ``text``, quoted and shortened for a chat line."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    if not line:
        return "(an empty prompt)."
    return f"“{line[: width - 1]}…”" if len(line) > width else f"“{line}”"


def chunks(text: str, size: int = WORDS_PER_CHUNK) -> Iterator[str]:
    """``text`` in pieces of ``size`` words that join back to exactly ``text``."""
    words = re.findall(r"\s*\S+\s*", text) or [text]
    for start in range(0, len(words), size):
        yield "".join(words[start : start + size])


def demo_file_text(old: str | None, turn: int, prompt: str) -> str:
    """New content for the demo file: created with a header, then one line per turn."""
    line = f"- turn {turn}: you wrote {excerpt(prompt)}\n"
    if old is None:
        return (
            "# tether demo\n\n"
            "tether's DEMO agent (no model behind it) wrote this file through the host's\n"
            "`fs/write_text_file`, after you approved the edit. Delete it whenever you like.\n\n"
            f"{line}"
        )
    kept = old.rstrip("\n")
    return f"{kept}\n{line}" if kept.strip() else line


def is_not_found(error: RequestError) -> bool:
    """Whether a failed ``fs/read_text_file`` means the file does not exist yet."""
    if error.code == NOT_FOUND_CODE:
        return True
    said = f"{error} {error.data}".lower()
    return any(words in said for words in NOT_FOUND_WORDS)


def error_text(error: RequestError) -> str:
    """A readable reason from an ACP error, preferring the detail the client gave."""
    detail = (error.data.get("message") or error.data.get("details")) if isinstance(error.data, dict) else None
    return f"{error}: {detail}" if detail else str(error)


class Tour:
    """One demo turn (see the module doc). ``run()`` returns the ACP stop reason.

    Updates go out in order through ``client``; ``open_call`` names the tool call in
    flight so that a cancelled turn can mark it failed before the prompt is answered.
    """

    def __init__(self, client: Client, session: DemoSession, capabilities: ClientCapabilities, prompt: str) -> None:
        self.client = client
        self.session = session
        self.capabilities = capabilities
        self.prompt = prompt
        self.turn = session.turns
        self.open_call: str | None = None
        self._delays = itertools.cycle(CHUNK_DELAYS)
        self._after_text = False

    async def run(self) -> StopReason:
        """Play the tour; stop early with ``cancelled`` if a permission was cancelled."""
        await self.plan(0)
        template = FIRST_INTRO if self.turn == 1 else LATER_INTRO
        await self.say(template.format(turn=self.turn, excerpt=excerpt(self.prompt)))
        await self.plan(1)
        if await self.edit() == "cancelled":
            return "cancelled"
        await self.plan(2)
        if await self.command() == "cancelled":
            return "cancelled"
        await self.plan(3)
        await self.say(OUTRO)
        return "end_turn"

    async def abandon(self) -> None:
        """After a cancel: mark the tool call in flight as failed (best effort)."""
        if self.open_call is not None:
            with contextlib.suppress(ConnectionError, RequestError):
                await self.send(update_tool_call(self.open_call, status="failed"))
            self.open_call = None

    # -- sending -------------------------------------------------------------------------

    async def send(self, update: SessionUpdate) -> None:
        """One ``session/update`` notification for this session."""
        self._after_text = False
        await self.client.session_update(session_id=self.session.id, update=update)

    async def say(self, text: str) -> None:
        """Stream ``text`` as agent message chunks, a paragraph after any earlier text."""
        if self._after_text:
            text = "\n\n" + text
        for piece in chunks(text):
            await self.send(update_agent_message_text(piece))
            await asyncio.sleep(next(self._delays))
        self._after_text = True

    async def plan(self, done: int) -> None:
        """The plan with ``done`` entries completed and the next one in progress."""
        entries = [
            plan_entry(step, status="completed" if i < done else "in_progress" if i == done else "pending")
            for i, step in enumerate(PLAN)
        ]
        await self.send(update_plan(entries))

    async def set_status(self, call_id: str, status: ToolCallStatus, **changes: Any) -> None:
        """Move a tool call on; a final status closes it."""
        await self.send(update_tool_call(call_id, status=status, **changes))
        if status in ("completed", "failed"):
            self.open_call = None

    # -- permission ----------------------------------------------------------------------

    async def permission(
        self, call_id: str, kind: ToolKind, title: str, content: list[ToolCallContentVariant] | None = None
    ) -> Answer:
        """Ask the client, unless an "always" answer for this kind was given earlier."""
        remembered = self.session.always.get(kind)
        if remembered is not None:
            return Answer(remembered, remembered=True)
        tool_call = ToolCallUpdate(tool_call_id=call_id, kind=kind, title=title, status="pending", content=content)
        response = await self.client.request_permission(
            session_id=self.session.id, tool_call=tool_call, options=list(OPTIONS)
        )
        # ACP: a client answers "cancelled" only when the turn is being cancelled.
        if isinstance(response.outcome, DeniedOutcome):
            return Answer("cancelled")
        chosen = next((o for o in OPTIONS if o.option_id == response.outcome.option_id), None)
        if chosen is None:  # an option we never offered is no consent
            log.warning("unknown permission option %r", response.outcome.option_id)
            return Answer("rejected")
        decision: Decision = "allowed" if chosen.kind.startswith("allow") else "rejected"
        if chosen.kind.endswith("always"):
            self.session.always[kind] = decision
        return Answer(decision)

    async def refused(self, call_id: str, kind: ToolKind, answer: Answer, what: str) -> None:
        """Close a tool call that was not allowed and say why (a cancel says nothing)."""
        await self.set_status(call_id, "failed")
        if answer.remembered:
            await self.say(f"You chose to always reject {kind} steps in this session, so {what}; I did not ask.")
        elif answer.decision == "rejected":
            await self.say(f"You rejected it, so {what}. That is fine: the tour goes on.")

    async def remembered_allow(self, kind: ToolKind, answer: Answer) -> None:
        """Say that an earlier "always allow" answered this step."""
        if answer.remembered:
            await self.say(f"You chose to always allow {kind} steps in this session, so I go ahead without asking.")

    # -- the edit ------------------------------------------------------------------------

    async def read_if_exists(self, path: Path) -> str | None:
        """Current text of ``path`` through ``fs/read_text_file``; None if it does not exist."""
        try:
            response = await self.client.read_text_file(session_id=self.session.id, path=str(path))
        except RequestError as error:
            if is_not_found(error):
                return None
            raise
        return response.content

    async def draft_edit(self) -> tuple[Path, str | None, str] | None:
        """(path, old text or None, new text) for the demo file, or None if it cannot be edited."""
        fs = self.capabilities.fs
        if fs is None or not (fs.read_text_file and fs.write_text_file):
            await self.say("Your editor does not offer fs/read_text_file and fs/write_text_file, so I skip the edit.")
            return None
        path = self.session.cwd / DEMO_FILE
        try:
            old = await self.read_if_exists(path)
        except RequestError as error:
            await self.say(f"I could not read {DEMO_FILE} ({error_text(error)}), so I skip the edit.")
            return None
        return path, old, demo_file_text(old, self.turn, self.prompt)

    async def edit(self) -> Decision | None:
        """Propose a diff to the demo file; write it through the client only if allowed."""
        draft = await self.draft_edit()
        if draft is None:
            return None
        path, old, new = draft
        call_id, title = f"demo-edit-{self.turn}", f"Edit {DEMO_FILE}"
        diff: list[ToolCallContentVariant] = [tool_diff_content(str(path), new, old)]
        await self.propose(call_id, title, "edit", diff, {"path": str(path), "content": new}, path)
        verb = "change" if old is not None else "create"
        hint = " Approve or reject it, here or on your phone." if "edit" not in self.session.always else ""
        await self.say(f"I propose to {verb} {DEMO_FILE}: the diff is in the tool call.{hint}")
        answer = await self.permission(call_id, "edit", title, diff)
        if answer.decision != "allowed":
            await self.refused(call_id, "edit", answer, f"{DEMO_FILE} is untouched")
        else:
            await self.remembered_allow("edit", answer)
            await self.write(call_id, path, new)
        return answer.decision

    async def write(self, call_id: str, path: Path, content: str) -> None:
        """The allowed edit, done by the client through ``fs/write_text_file``."""
        await self.set_status(call_id, "in_progress")
        try:
            await self.client.write_text_file(session_id=self.session.id, path=str(path), content=content)
        except RequestError as error:
            await self.set_status(call_id, "failed")
            await self.say(f"The host refused the write ({error_text(error)}); nothing changed.")
            return
        await self.set_status(call_id, "completed")
        await self.say(
            "Approved and written. I did not touch the disk: the host wrote the file for me "
            "(fs/write_text_file), and only inside the project folder."
        )

    async def propose(
        self,
        call_id: str,
        title: str,
        kind: ToolKind,
        content: list[ToolCallContentVariant] | None,
        raw_input: dict[str, Any],
        path: Path,
    ) -> None:
        """Announce a pending tool call."""
        call = start_tool_call(
            call_id,
            title,
            kind=kind,
            status="pending",
            content=content,
            locations=[ToolCallLocation(path=str(path))],
            raw_input=raw_input,
        )
        await self.send(call)
        self.open_call = call_id

    # -- the command ---------------------------------------------------------------------

    async def command(self) -> Decision | None:
        """Propose a harmless command; run it through the client's terminal only if allowed."""
        if not self.capabilities.terminal:
            await self.say("Your editor does not offer terminal/*, so I skip the command.")
            return None
        call_id, title = f"demo-run-{self.turn}", f"Run `{SHOWN_COMMAND}`"
        raw = {"command": COMMAND, "args": list(COMMAND_ARGS), "cwd": str(self.session.cwd)}
        await self.propose(call_id, title, "execute", None, raw, self.session.cwd)
        hint = " It needs approval too." if "execute" not in self.session.always else ""
        await self.say(f"Next, a harmless command: `{SHOWN_COMMAND}` lists the project folder.{hint}")
        answer = await self.permission(call_id, "execute", title)
        if answer.decision != "allowed":
            await self.refused(call_id, "execute", answer, "nothing ran")
        else:
            await self.remembered_allow("execute", answer)
            await self.execute(call_id)
        return answer.decision

    async def execute(self, call_id: str) -> None:
        """The allowed command, run by the client; report how it ended."""
        try:
            exit_code, output = await self.run_terminal(call_id)
        except RequestError as error:
            await self.set_status(call_id, "failed")
            await self.say(f"The host could not run it ({error_text(error)}).")
            return
        await self.set_status(call_id, "completed" if exit_code == 0 else "failed", raw_output={"exit_code": exit_code})
        await self.say(
            f"`{SHOWN_COMMAND}` exited with code {exit_code} and printed {len(output.splitlines())} lines "
            "(see the tool call): the host ran it in its own terminal, in the project folder."
        )

    async def run_terminal(self, call_id: str) -> tuple[int | None, str]:
        """Run the command in a client terminal shown inside the tool call; (exit code, output)."""
        created = await self.client.create_terminal(
            session_id=self.session.id,
            command=COMMAND,
            args=list(COMMAND_ARGS),
            cwd=str(self.session.cwd),
            output_byte_limit=OUTPUT_BYTE_LIMIT,
        )
        terminal_id = created.terminal_id
        try:
            # ACP: embedding the terminal lets the client show live output in the tool call.
            await self.set_status(call_id, "in_progress", content=[tool_terminal_ref(terminal_id)])
            exited = await self.client.wait_for_terminal_exit(session_id=self.session.id, terminal_id=terminal_id)
            output = await self.client.terminal_output(session_id=self.session.id, terminal_id=terminal_id)
        finally:
            # ACP: release kills the command if it still runs (a cancel) and frees the terminal.
            with contextlib.suppress(ConnectionError, RequestError):
                await self.client.release_terminal(session_id=self.session.id, terminal_id=terminal_id)
        return exited.exit_code, output.output


class DemoAgent:
    """The ACP agent side: sessions, one running Tour per session, and cancellation."""

    def __init__(self) -> None:
        self.sessions: dict[str, DemoSession] = {}
        self.capabilities = ClientCapabilities()
        self._client: Client | None = None

    def on_connect(self, conn: Client) -> None:
        """Keep the connection: it is how the agent reaches the client."""
        self._client = conn

    @property
    def client(self) -> Client:
        """The connected client; the SDK sets it before any request arrives."""
        if self._client is None:
            raise RuntimeError("the demo agent is not connected")
        return self._client

    async def initialize(
        self,
        protocol_version: int,
        client_capabilities: ClientCapabilities | None = None,
        client_info: Implementation | None = None,
        **kwargs: Any,
    ) -> InitializeResponse:
        """Agree on ACP v1 and note what the client can do (fs, terminal)."""
        self.capabilities = client_capabilities or ClientCapabilities()
        return InitializeResponse(
            protocol_version=PROTOCOL_VERSION,
            agent_capabilities=AgentCapabilities(),
            agent_info=Implementation(name="tether-demo", title="tether demo agent", version=tether.__version__),
        )

    async def new_session(self, cwd: str, mcp_servers: list[Any] | None = None, **kwargs: Any) -> NewSessionResponse:
        """A fresh session rooted at ``cwd`` (MCP servers are ignored: the demo has no tools to add)."""
        session = DemoSession(id=f"demo-{uuid.uuid4().hex}", cwd=Path(cwd))
        self.sessions[session.id] = session
        return NewSessionResponse(session_id=session.id)

    async def prompt(self, session_id: str, prompt: list[ContentBlock], **kwargs: Any) -> PromptResponse:
        """Play one tour; a ``session/cancel`` meanwhile ends it with ``cancelled``."""
        session = self._session(session_id)
        if session.turn is not None:
            raise RequestError.invalid_request({"message": "a prompt is already running in this session"})
        session.turns += 1
        tour = Tour(self.client, session, self.capabilities, prompt_text(prompt))
        # The tour runs as its own task so that cancel() can interrupt any await in it,
        # a pending permission request included.
        session.turn = asyncio.create_task(tour.run())
        try:
            stop_reason = await session.turn
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the connection is closing: this request itself was cancelled
            stop_reason = "cancelled"
        finally:
            session.turn = None
        if stop_reason == "cancelled":
            # ACP: updates for a cancelled turn must be sent before the prompt is answered.
            await tour.abandon()
        return PromptResponse(stop_reason=stop_reason)

    async def cancel(self, session_id: str, **kwargs: Any) -> None:
        """ACP ``session/cancel``: stop the running turn, if any."""
        session = self.sessions.get(session_id)
        if session is not None and session.turn is not None:
            session.turn.cancel()

    def _session(self, session_id: str) -> DemoSession:
        session = self.sessions.get(session_id)
        if session is None:
            raise RequestError.invalid_params({"message": f"unknown session {session_id}"})
        return session


async def serve() -> None:
    """Speak ACP on stdin/stdout until the client closes the connection."""
    # The SDK's Agent protocol lists every optional method (load, fork, modes...); the
    # router answers "method not found" for those the demo does not implement.
    await run_agent(cast(Agent, DemoAgent()))


def main() -> None:
    """Entry point: stdout carries ACP only, so logs go to stderr."""
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="tether-demo: %(levelname)s %(message)s")
    if sys.stdin.isatty():  # a person, not an ACP client: point them at the tour
        log.warning("this agent speaks ACP on stdin/stdout; for the guided tour run `tether demo`")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


if __name__ == "__main__":
    main()
