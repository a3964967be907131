"""The neutral model the agent thinks in, whatever the provider: conversation, stream events, errors.

The agent loop never sees an SDK type. A provider adapter (``providers/``) turns a
``Conversation`` into its API's request and its API's stream back into these events:

::

    TextDelta     a piece of the model's visible answer, streamed as it arrives
    ToolCall      one complete tool call (its JSON arguments already assembled and parsed)
    Usage         tokens of this request: input (the whole context sent) and output
    Stop          the end of the model turn, with the reason the model gave

Errors are values of one class, ProviderError, translated from each SDK's exceptions at
the adapter's edge: ``retryable`` says whether waiting and asking again can help (429,
overloaded, 5xx, timeouts), ``retry_after`` carries the server's hint when it gave one.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from tether.errors import ProviderError as ProviderError  # re-exported: providers raise it from here

Role = Literal["user", "assistant"]
StopKind = Literal["end_turn", "tool_use", "max_tokens", "refusal", "other"]


@dataclass(frozen=True, slots=True)
class Text:
    """Visible text, from the user or the model."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolUse:
    """The model asked to run tool ``name`` with ``input`` (a JSON object)."""

    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What running tool call ``tool_use_id`` gave back to the model."""

    tool_use_id: str
    content: str
    is_error: bool = False


Block = Text | ToolUse | ToolResult


@dataclass(frozen=True, slots=True)
class Message:
    """One message of the conversation; user messages carry the tool results."""

    role: Role
    blocks: tuple[Block, ...]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as the model sees it: name, description, JSON Schema of its input."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of streamed answer text."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A complete tool call. Arguments that were not a JSON object arrive as ``{"_invalid_json": raw}``."""

    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one request: everything sent (cache reads included) and everything generated."""

    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class Stop:
    """The model turn ended."""

    reason: StopKind


Event = TextDelta | ToolCall | Usage | Stop


class Provider(Protocol):
    """One model API. ``stream`` yields events for one model turn and raises ProviderError."""

    name: str
    model: str
    endpoint: str

    def stream(
        self, system: str, messages: Sequence[Message], tools: Sequence[ToolSpec], max_tokens: int
    ) -> AsyncIterator[Event]: ...

    async def aclose(self) -> None: ...


def parse_arguments(raw: str) -> dict[str, Any]:
    """Tool arguments as streamed JSON text -> an object; anything else is kept for the error message."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {"_invalid_json": raw}
    return value if isinstance(value, dict) else {"_invalid_json": raw}
