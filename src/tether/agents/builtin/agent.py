"""The built-in coding agent as an ACP agent: sessions, the prompt turn, cancel.

One prompt turn (ACP ``session/prompt``)::

    user text -> history
    repeat (at most MAX_STEPS times):
        fit the history into the context window (context.py), say so if it trimmed
        stream one model reply: text -> agent_message_chunk, tool calls collected,
            usage -> usage_update; retryable API errors -> a thought, backoff, again
        no tool calls -> the turn ends with the model's stop reason
        run the tool calls in order (toolbox.py: tool_call updates, permission, fs/terminal)
        their results -> history

The turn runs as its own task so that ``session/cancel`` can stop it wherever it is
waiting: in the model stream (closing it aborts the HTTP request), in a permission
request, or in a running command (which the toolbox kills). What was said and done up to
then stays in the history, every tool call answered, so the next prompt continues from a
conversation both APIs accept; the prompt then answers with stop reason ``cancelled``
(ACP: never an error for a cancelled turn).

Errors the user must act on (no key, unknown model, unreachable server) end the turn with
one line of agent text, not a JSON-RPC error, so every client shows them the same way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from acp import PROTOCOL_VERSION, RequestError
from acp.helpers import ContentBlock, update_agent_message_text, update_agent_thought_text
from acp.interfaces import Client
from acp.schema import (
    AgentCapabilities,
    ClientCapabilities,
    EmbeddedResourceContentBlock,
    Implementation,
    InitializeResponse,
    NewSessionResponse,
    PromptCapabilities,
    PromptResponse,
    ResourceContentBlock,
    StopReason,
    TextContentBlock,
    TextResourceContents,
    UsageUpdate,
)

from tether.agents.builtin import context, providers, retry
from tether.agents.builtin.config import AgentConfig
from tether.agents.builtin.model import (
    Block,
    Message,
    Provider,
    Stop,
    Text,
    TextDelta,
    ToolCall,
    ToolResult,
    ToolUse,
    Usage,
)
from tether.agents.builtin.toolbox import Toolbox
from tether.agents.builtin.tools import Permissions
from tether.errors import ProviderError

log = logging.getLogger("tether.agents.builtin")
MAX_STEPS = 100
STOP_REASONS: dict[str, StopReason] = {"max_tokens": "max_tokens", "refusal": "refusal"}
INSTRUCTIONS = """\
You are tether's coding agent, working in the project folder {cwd} on the user's machine.
The user may be following along from a phone. Be direct and brief; show code only when it helps.

How to work:
- Look before you change: list_files and search to find your way, read_file before editing.
- For a task of several steps, call update_plan first and keep the plan current as you go.
- Change files with edit_file (exact, unique text) or write_file (new files). Keep changes minimal.
- Check your work with run_command (tests, builds) when the project has a way to.
- Every edit, write and command waits for the user's approval. If the user denies one, do not
  repeat it: say what you wanted to do and ask how to proceed, or take another approach.
- When done, say in a sentence or two what you changed and what you checked.
"""


@dataclass
class Reply:
    """One complete model reply."""

    text: str = ""
    calls: list[ToolCall] = field(default_factory=list)
    stop: str = "other"
    usage: Usage | None = None


@dataclass
class Session:
    """One ACP session: its folder, tools, conversation and running turn."""

    id: str
    cwd: str
    toolbox: Toolbox
    history: list[Message] = field(default_factory=list)
    chars_per_token: float = context.DEFAULT_CHARS_PER_TOKEN
    turn: asyncio.Task[StopReason] | None = None

    def close_open_calls(self) -> None:
        """Answer tool calls left without results: a turn stopped between a reply and its tools."""
        last = self.history[-1] if self.history else None
        if last is not None and last.role == "assistant":
            calls = [b.id for b in last.blocks if isinstance(b, ToolUse)]
            self.add("user", [ToolResult(call_id, "Stopped by the user.", True) for call_id in calls])

    def add(self, role: str, blocks: Sequence[Block]) -> None:
        """Append a message, merging into the last one when roles repeat (after a cancel or an error)."""
        if not blocks:
            return
        if self.history and self.history[-1].role == role:
            last = self.history[-1]
            self.history[-1] = Message(last.role, (*last.blocks, *blocks))
        else:
            self.history.append(Message("user" if role == "user" else "assistant", tuple(blocks)))


def prompt_text(blocks: Sequence[ContentBlock]) -> str:
    """The user's prompt as text: embedded files inline, links by reference, media noted."""
    parts = []
    for block in blocks:
        if isinstance(block, TextContentBlock):
            parts.append(block.text)
        elif isinstance(block, ResourceContentBlock):
            parts.append(f"[{block.name}]({block.uri})")
        elif isinstance(block, EmbeddedResourceContentBlock) and isinstance(block.resource, TextResourceContents):
            parts.append(f'<context uri="{block.resource.uri}">\n{block.resource.text}\n</context>')
        else:
            parts.append(f"[a {block.type} attachment was left out: this agent reads text only]")
    return "\n\n".join(parts)


class BuiltinAgent:
    """The ACP Agent (see module doc). ``jitter`` and ``sleep`` are parameters for tests."""

    def __init__(
        self,
        config: AgentConfig,
        load_provider: Callable[[AgentConfig], Provider] = providers.load,
        preload: Callable[[AgentConfig], None] = providers.preload,
        jitter: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self._load_provider = load_provider
        self._preload = preload
        self._warmup: asyncio.Task[None] | None = None
        self._jitter = jitter
        self._sleep = sleep
        self._provider: Provider | None = None
        self._client: Client | None = None
        self._capabilities: ClientCapabilities | None = None
        self._sessions: dict[str, Session] = {}

    def on_connect(self, conn: Client) -> None:
        self._client = conn

    @property
    def client(self) -> Client:
        assert self._client is not None, "on_connect is called before any request"
        return self._client

    async def initialize(
        self,
        protocol_version: int,
        client_capabilities: ClientCapabilities | None = None,
        client_info: Implementation | None = None,
        **kwargs: Any,
    ) -> InitializeResponse:
        self._capabilities = client_capabilities
        if self._warmup is None and not self.config.missing_key:
            # Importing an SDK takes about a second: do it while the user types the first prompt.
            self._warmup = asyncio.create_task(asyncio.to_thread(self._preload, self.config))
        return InitializeResponse(
            protocol_version=min(protocol_version, PROTOCOL_VERSION),
            agent_capabilities=AgentCapabilities(
                load_session=False, prompt_capabilities=PromptCapabilities(embedded_context=True)
            ),
            agent_info=Implementation(name="tether-agent", title="tether built-in agent", version="0.1.0"),
        )

    async def new_session(self, cwd: str, mcp_servers: list[Any] | None = None, **kwargs: Any) -> NewSessionResponse:
        session_id = uuid.uuid4().hex
        toolbox = Toolbox(self.client, session_id, cwd, self._capabilities, Permissions())
        self._sessions[session_id] = Session(session_id, cwd, toolbox)
        return NewSessionResponse(session_id=session_id)

    async def authenticate(self, method_id: str, **kwargs: Any) -> None:
        # No auth methods are advertised: keys come from the environment (config.py).
        return None

    async def cancel(self, session_id: str, **kwargs: Any) -> None:
        session = self._sessions.get(session_id)
        if session is not None and session.turn is not None and not session.turn.done():
            session.turn.cancel()

    async def prompt(self, session_id: str, prompt: list[ContentBlock], **kwargs: Any) -> PromptResponse:
        session = self._sessions.get(session_id)
        if session is None:
            raise RequestError.invalid_params({"message": f"unknown session {session_id}"})
        if session.turn is not None and not session.turn.done():
            raise RequestError.invalid_request({"message": "a prompt is already running in this session"})
        turn = asyncio.create_task(self._turn(session, prompt_text(prompt)))
        session.turn = turn
        try:
            await asyncio.wait({turn})
        except asyncio.CancelledError:
            turn.cancel()  # the connection is closing: stop the turn with it
            raise
        if turn.cancelled():
            return PromptResponse(stop_reason="cancelled")
        return PromptResponse(stop_reason=turn.result())

    async def _say(self, session: Session, text: str) -> None:
        await self.client.session_update(session.id, update_agent_message_text(text))

    async def _think(self, session: Session, text: str) -> None:
        # One notice per line: thought chunks are concatenated by the client.
        await self.client.session_update(session.id, update_agent_thought_text(f"{text}\n"))

    async def _turn(self, session: Session, text: str) -> StopReason:
        session.close_open_calls()
        session.add("user", [Text(text)])
        try:
            if self.config.missing_key:
                await self._say(session, self.config.missing_key)
                return "end_turn"
            if self._provider is None:
                if self._warmup is not None:
                    await self._warmup
                self._provider = self._load_provider(self.config)
            for _ in range(MAX_STEPS):
                reply = await self._reply(session, self._provider)
                if not reply.calls:
                    return STOP_REASONS.get(reply.stop, "end_turn")
                await self._run_tools(session, reply.calls)
        except ProviderError as exc:
            await self._say(session, str(exc))
            return "end_turn"
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception as exc:
            log.exception("internal error")
            await self._say(session, f"tether-agent failed: {type(exc).__name__}: {exc} (details in its log).")
            return "end_turn"
        await self._say(session, f"Stopped after {MAX_STEPS} model replies in one turn; say how to continue.")
        return "max_turn_requests"

    async def _run_tools(self, session: Session, calls: list[ToolCall]) -> None:
        results: list[Block] = []
        try:
            for call in calls:
                results.append(await session.toolbox.run(call))
        except BaseException:
            # Stopped (or failed) midway: every tool call must still be answered in the next
            # message, or the API refuses the history.
            done = {r.tool_use_id for r in results if isinstance(r, ToolResult)}
            results += [ToolResult(c.id, "Stopped by the user.", True) for c in calls if c.id not in done]
            raise
        finally:
            session.add("user", results)

    def _fit(self, session: Session, overhead_chars: int) -> context.Fitted:
        window = self.config.context_window
        # A small local model gets a quarter of its window for the reply, not a fixed 8192.
        reserve = min(self.config.max_tokens, window // 4)
        budget = max(window - reserve - int(overhead_chars / session.chars_per_token), window // 4)
        fitted = context.fit(session.history, budget, session.chars_per_token)
        session.history = list(fitted.messages)
        return fitted

    async def _reply(self, session: Session, provider: Provider) -> Reply:
        """Stream one model reply, retrying what can be retried; ProviderError when it cannot be had."""
        specs = session.toolbox.specs()
        system = INSTRUCTIONS.format(cwd=session.cwd)
        overhead = len(system) + len(json.dumps([(s.name, s.description, s.parameters) for s in specs]))
        fitted = self._fit(session, overhead)
        if fitted.changed:
            await self._think(
                session,
                f"Context: trimmed {fitted.trimmed_blocks} old tool outputs and removed {fitted.dropped_messages} "
                f"old messages to stay within the {self.config.context_window}-token window.",
            )
        chars = overhead + sum(context.block_chars(b) for m in session.history for b in m.blocks)
        for attempt in range(1, retry.MAX_ATTEMPTS + 1):
            reply = Reply()
            try:
                async for event in provider.stream(system, session.history, specs, self.config.max_tokens):
                    if isinstance(event, TextDelta):
                        reply.text += event.text
                        await self.client.session_update(session.id, update_agent_message_text(event.text))
                    elif isinstance(event, ToolCall):
                        reply.calls.append(event)
                    elif isinstance(event, Usage):
                        reply.usage = event
                    elif isinstance(event, Stop):
                        reply.stop = event.reason
            except ProviderError as exc:
                if not exc.retryable:
                    raise
                if attempt == retry.MAX_ATTEMPTS:
                    raise ProviderError(f"{exc}. Gave up after {attempt} attempts; try again later.") from None
                delay = retry.backoff_delay(attempt, exc.retry_after, self._jitter())
                notice = retry.retry_notice(exc, attempt, delay)
                if reply.text:
                    notice += " The partial answer above is discarded."
                await self._think(session, notice)
                await self._sleep(delay)
                continue
            except asyncio.CancelledError:
                session.add("assistant", [Text(reply.text)] if reply.text else [])
                raise
            break
        blocks: list[Block] = [Text(reply.text)] if reply.text else []
        blocks += [ToolUse(c.id, c.name, c.input) for c in reply.calls]
        session.add("assistant", blocks)
        if reply.usage is not None:
            session.chars_per_token = context.calibrate(chars, reply.usage.input_tokens)
            used = reply.usage.input_tokens + reply.usage.output_tokens
            await self.client.session_update(
                session.id,
                UsageUpdate(session_update="usage_update", used=used, size=self.config.context_window),
            )
        return reply

    async def aclose(self) -> None:
        """Close the model client (at exit)."""
        if self._provider is not None:
            await self._provider.aclose()
