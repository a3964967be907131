"""The Anthropic Messages API, streamed through the ``anthropic`` SDK.

Only ``messages.create(stream=True)`` and the raw server-sent events are used, the part of
the SDK that has stayed the same from 0.40 to 2.x. The events are read as plain dicts by
AnthropicDecoder, which holds no I/O and is fed one event at a time::

    message_start        usage.input_tokens (+ cache reads and writes: all of it is context)
    content_block_start  text (may carry initial text) | tool_use (id, name)
    content_block_delta  text_delta -> TextDelta | input_json_delta -> appended to the call's JSON
    content_block_stop   a tool_use block is complete -> ToolCall
    message_delta        stop_reason, usage.output_tokens (cumulative)
    message_stop         -> Usage, Stop

The SDK's own retries are off (``max_retries=0``): the agent loop retries, so that each
wait shows in the transcript.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import anthropic

from tether.agents.builtin.config import AgentConfig
from tether.agents.builtin.model import (
    Event,
    Message,
    StopKind,
    Text,
    TextDelta,
    ToolCall,
    ToolResult,
    ToolSpec,
    ToolUse,
    Usage,
    parse_arguments,
)
from tether.agents.builtin.model import Stop as StopEvent
from tether.agents.builtin.retry import broken_stream, connection_error, is_transport_error, status_error

STOP_REASONS: dict[str, StopKind] = {
    "end_turn": "end_turn",
    "stop_sequence": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "refusal": "refusal",
}
# Prompt caching: the system prompt and tools never change within a session, and each
# request repeats the whole conversation, so marking the system prompt and the newest
# message lets the API bill the repeated prefix as cheap cache reads.
CACHE = {"type": "ephemeral"}


def _block(block: Text | ToolUse | ToolResult) -> dict[str, Any]:
    if isinstance(block, Text):
        return {"type": "text", "text": block.text}
    if isinstance(block, ToolUse):
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    return {
        "type": "tool_result",
        "tool_use_id": block.tool_use_id,
        "content": block.content or "(no output)",
        "is_error": block.is_error,
    }


def to_wire(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """The ``messages`` array of a Messages API request."""
    wire: list[dict[str, Any]] = []
    for message in messages:
        # The API rejects empty text blocks.
        content = [_block(b) for b in message.blocks if not (isinstance(b, Text) and not b.text)]
        if content:
            wire.append({"role": message.role, "content": content})
    if wire:
        wire[-1]["content"][-1]["cache_control"] = CACHE
    return wire


def tools_to_wire(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """The ``tools`` array of a Messages API request."""
    return [{"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools]


@dataclass
class _PartialTool:
    id: str
    name: str
    initial: dict[str, Any]
    json: list[str] = field(default_factory=list)


class AnthropicDecoder:
    """Turns Messages API stream events (as dicts) into neutral events; see module doc."""

    def __init__(self) -> None:
        self._tools: dict[int, _PartialTool] = {}
        self._input_tokens = 0
        self._output_tokens = 0
        self._stop: StopKind = "other"

    def feed(self, event: Mapping[str, Any]) -> list[Event]:
        """The neutral events for one stream event (often none)."""
        kind = event.get("type")
        if kind == "message_start":
            self._count(event.get("message", {}).get("usage") or {})
        elif kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "text" and block.get("text"):
                return [TextDelta(block["text"])]
            if block.get("type") == "tool_use":
                initial = block.get("input")
                self._tools[event.get("index", 0)] = _PartialTool(
                    block.get("id", ""), block.get("name", ""), initial if isinstance(initial, dict) else {}
                )
        elif kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                return [TextDelta(delta["text"])]
            if delta.get("type") == "input_json_delta" and event.get("index", 0) in self._tools:
                self._tools[event.get("index", 0)].json.append(delta.get("partial_json", ""))
        elif kind == "content_block_stop":
            tool = self._tools.pop(event.get("index", 0), None)
            if tool is not None:
                raw = "".join(tool.json)
                return [ToolCall(tool.id, tool.name, parse_arguments(raw) if raw.strip() else tool.initial)]
        elif kind == "message_delta":
            self._count(event.get("usage") or {})
            reason = (event.get("delta") or {}).get("stop_reason")
            if reason:
                self._stop = STOP_REASONS.get(reason, "other")
        elif kind == "message_stop":
            return [Usage(self._input_tokens, self._output_tokens), StopEvent(self._stop)]
        return []

    def _count(self, usage: Mapping[str, Any]) -> None:
        # message_start carries the input counts; message_delta the cumulative output count
        # (and, on newer API versions, the input counts again).
        inputs = [usage.get(k) for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")]
        if any(isinstance(n, int) for n in inputs):
            self._input_tokens = sum(n for n in inputs if isinstance(n, int))
        if isinstance(usage.get("output_tokens"), int):
            self._output_tokens = usage["output_tokens"]


class AnthropicProvider:
    """The Messages API through ``anthropic.AsyncAnthropic``."""

    name = "anthropic"

    def __init__(self, config: AgentConfig) -> None:
        self.model = config.model
        self.endpoint = config.endpoint
        self._client = anthropic.AsyncAnthropic(api_key=config.api_key, base_url=config.base_url, max_retries=0)

    def _translate(self, exc: anthropic.APIError) -> Exception:
        if isinstance(exc, anthropic.APIStatusError):
            return status_error(
                exc.status_code,
                exc.body,
                exc.response.headers,
                endpoint=self.endpoint,
                model=self.model,
                key_variable="ANTHROPIC_API_KEY",
            )
        if isinstance(exc, anthropic.APIConnectionError):
            reason = str(exc.__cause__ or "")
            timeout = isinstance(exc, anthropic.APITimeoutError)
            return connection_error(self.endpoint, "ANTHROPIC_BASE_URL", timeout=timeout, reason=reason)
        return status_error(0, exc.body, {}, endpoint=self.endpoint, model=self.model, key_variable="ANTHROPIC_API_KEY")

    async def stream(
        self, system: str, messages: Sequence[Message], tools: Sequence[ToolSpec], max_tokens: int
    ) -> AsyncIterator[Event]:
        """One model turn as neutral events; raises ProviderError."""
        decoder = AnthropicDecoder()
        try:
            stream = await self._client.messages.create(
                model=self.model,
                max_tokens=max_tokens,
                # Plain dicts of the documented JSON shapes: the SDK's TypedDicts differ between versions.
                system=cast(Any, [{"type": "text", "text": system, "cache_control": CACHE}]),
                messages=cast(Any, to_wire(messages)),
                tools=cast(Any, tools_to_wire(tools)),
                stream=True,
            )
        except anthropic.APIError as exc:
            raise self._translate(exc) from None
        try:
            async for event in stream:
                for item in decoder.feed(event.to_dict(mode="json")):
                    yield item
        except anthropic.APIError as exc:
            raise self._translate(exc) from None
        except Exception as exc:
            # The SDK lets the HTTP library's read errors through when a stream breaks off.
            if not is_transport_error(exc):
                raise
            raise broken_stream(self.endpoint, exc) from None
        finally:
            # Also on cancel: closing the response is what aborts the HTTP stream.
            await stream.close()

    async def aclose(self) -> None:
        await self._client.close()
