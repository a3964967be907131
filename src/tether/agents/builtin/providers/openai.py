"""Any OpenAI-compatible Chat Completions endpoint, streamed through the ``openai`` SDK.

This covers api.openai.com and the local servers that copy its wire format: Ollama,
vLLM, LM Studio, llama.cpp's ``llama-server``. Only ``chat.completions.create(stream=True)``
is used, the call all of them implement, with ``stream_options.include_usage`` so the
last chunk carries the token counts. OpenAIDecoder reads the ``chat.completion.chunk``
objects as dicts, with no I/O::

    choices[0].delta.content                         -> TextDelta
    choices[0].delta.tool_calls[i].id / function.name  start call i
    choices[0].delta.tool_calls[i].function.arguments  JSON text, in pieces, appended
    choices[0].finish_reason                          stop | tool_calls | length | content_filter
    usage (a last chunk with no choices)              -> Usage
    (end of stream, ``data: [DONE]``)                 -> ToolCall..., Usage, Stop  (from ``finish``)

No output limit is sent: ``max_tokens`` is refused by OpenAI's reasoning models and
``max_completion_tokens`` by some local servers, and each server has a sane default.
The configured max tokens still counts as reserved room when the context is trimmed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import openai

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

FINISH_REASONS: dict[str, StopKind] = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
    "content_filter": "refusal",
}


def to_wire(system: str, messages: Sequence[Message]) -> list[dict[str, Any]]:
    """The ``messages`` array of a Chat Completions request.

    Tool results become ``role: tool`` messages right after the assistant message that
    asked for them, as the API requires; text in the same user message follows them.
    """
    wire: list[dict[str, Any]] = [{"role": "system", "content": system}]
    for message in messages:
        texts = "".join(b.text for b in message.blocks if isinstance(b, Text))
        if message.role == "assistant":
            entry: dict[str, Any] = {"role": "assistant", "content": texts or None}
            calls = [b for b in message.blocks if isinstance(b, ToolUse)]
            if calls:
                entry["tool_calls"] = [
                    {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.input)}}
                    for c in calls
                ]
            wire.append(entry)
            continue
        for block in message.blocks:
            if isinstance(block, ToolResult):
                content = f"Error: {block.content}" if block.is_error else block.content
                wire.append({"role": "tool", "tool_call_id": block.tool_use_id, "content": content or "(no output)"})
        if texts:
            wire.append({"role": "user", "content": texts})
    return wire


def tools_to_wire(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """The ``tools`` array of a Chat Completions request."""
    return [
        {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
        for t in tools
    ]


@dataclass
class _PartialCall:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class OpenAIDecoder:
    """Turns chat.completion.chunk dicts into neutral events; see module doc. Call ``finish`` at the end."""

    def __init__(self) -> None:
        self._calls: dict[int, _PartialCall] = {}
        self._usage: Usage | None = None
        self._finish: str | None = None

    def feed(self, chunk: Mapping[str, Any]) -> list[Event]:
        """The text deltas in one chunk; tool calls and usage are kept for ``finish``."""
        usage = chunk.get("usage")
        if isinstance(usage, Mapping):
            self._usage = Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
        events: list[Event] = []
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                events.append(TextDelta(delta["content"]))
            for position, piece in enumerate(delta.get("tool_calls") or []):
                call = self._calls.setdefault(piece.get("index", position), _PartialCall())
                call.id = call.id or piece.get("id") or ""
                function = piece.get("function") or {}
                # The name comes whole in the first piece; some servers repeat it later.
                call.name = call.name or function.get("name") or ""
                if function.get("arguments"):
                    call.arguments.append(function["arguments"])
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return events

    def finish(self) -> list[Event]:
        """The complete tool calls, the usage and the stop, once the stream has ended."""
        events: list[Event] = [
            ToolCall(call.id or f"call_{index}", call.name, parse_arguments("".join(call.arguments)))
            for index, call in sorted(self._calls.items())
        ]
        if self._usage is not None:
            events.append(self._usage)
        # Some local servers say "stop" even when they called tools; the calls decide.
        stop = "tool_use" if self._calls else FINISH_REASONS.get(self._finish or "", "other")
        events.append(StopEvent(stop))
        return events


class OpenAIProvider:
    """Chat Completions through ``openai.AsyncOpenAI``."""

    name = "openai"

    def __init__(self, config: AgentConfig) -> None:
        self.model = config.model
        self.endpoint = config.endpoint
        self._client = openai.AsyncOpenAI(api_key=config.api_key, base_url=config.base_url, max_retries=0)

    def _translate(self, exc: openai.APIError) -> Exception:
        if isinstance(exc, openai.APIStatusError):
            return status_error(
                exc.status_code,
                exc.body,
                exc.response.headers,
                endpoint=self.endpoint,
                model=self.model,
                key_variable="OPENAI_API_KEY",
            )
        if isinstance(exc, openai.APIConnectionError):
            reason = str(exc.__cause__ or "")
            timeout = isinstance(exc, openai.APITimeoutError)
            return connection_error(self.endpoint, "OPENAI_BASE_URL", timeout=timeout, reason=reason)
        # An ``error`` object inside the stream: no HTTP status of its own.
        return status_error(
            0,
            {"error": exc.body} if exc.body else str(exc),
            {},
            endpoint=self.endpoint,
            model=self.model,
            key_variable="OPENAI_API_KEY",
        )

    async def stream(
        self, system: str, messages: Sequence[Message], tools: Sequence[ToolSpec], max_tokens: int
    ) -> AsyncIterator[Event]:
        """One model turn as neutral events; raises ProviderError."""
        decoder = OpenAIDecoder()
        try:
            stream = await self._client.chat.completions.create(
                model=self.model,
                # Plain dicts of the documented JSON shapes: the SDK's TypedDicts differ between versions.
                messages=cast(Any, to_wire(system, messages)),
                tools=cast(Any, tools_to_wire(tools)),
                stream=True,
                stream_options={"include_usage": True},
            )
        except openai.APIError as exc:
            raise self._translate(exc) from None
        try:
            async for chunk in stream:
                for item in decoder.feed(chunk.to_dict(mode="json")):
                    yield item
        except openai.APIError as exc:
            raise self._translate(exc) from None
        except Exception as exc:
            # The SDK lets the HTTP library's read errors through when a stream breaks off.
            if not is_transport_error(exc):
                raise
            raise broken_stream(self.endpoint, exc) from None
        finally:
            # Also on cancel: closing the response is what aborts the HTTP stream.
            await stream.close()
        for item in decoder.finish():
            yield item

    async def aclose(self) -> None:
        await self._client.close()
