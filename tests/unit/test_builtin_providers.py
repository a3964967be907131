"""The model API adapters' pure parts: stream decoders, request shapes, and which failures are retried."""

from __future__ import annotations

from typing import Any

import pytest

from tether.agents.builtin.model import Message, Stop, Text, TextDelta, ToolCall, ToolResult, ToolUse, Usage
from tether.agents.builtin.providers.anthropic import AnthropicDecoder
from tether.agents.builtin.providers.anthropic import to_wire as anthropic_wire
from tether.agents.builtin.providers.openai import OpenAIDecoder
from tether.agents.builtin.providers.openai import to_wire as openai_wire
from tether.agents.builtin.retry import backoff_delay, parse_retry_after, status_error

HISTORY = [
    Message("user", (Text("fix it"),)),
    Message("assistant", (Text("Reading."), ToolUse("t1", "read_file", {"path": "a.py"}))),
    Message("user", (ToolResult("t1", "1\tx = 1"), Text("and be quick"))),
]


def test_anthropic_stream_events_become_neutral_events() -> None:
    """Text deltas stream; tool input JSON pieces become one call; usage sums cache reads and writes."""
    decoder = AnthropicDecoder()
    usage = {"input_tokens": 10, "cache_read_input_tokens": 90, "cache_creation_input_tokens": 5, "output_tokens": 1}
    stream: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"usage": usage}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t", "name": "n"}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"a"'}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ": 1}"}},
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 7}},
        {"type": "message_stop"},
    ]
    events = [event for item in stream for event in decoder.feed(item)]
    assert [TextDelta("Hi"), ToolCall("t", "n", {"a": 1}), Usage(105, 7), Stop("tool_use")] == events


def test_openai_chunks_become_neutral_events() -> None:
    """Content streams; tool call pieces are joined by index; usage and finish come at the end."""
    decoder = OpenAIDecoder()
    chunks: list[dict[str, Any]] = [
        {"choices": [{"delta": {"role": "assistant", "content": "Hi"}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "n", "arguments": ""}}]}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"a": '}}]}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}}]},
        {"choices": [{"delta": {}, "finish_reason": "tool_calls"}]},
        {"choices": [], "usage": {"prompt_tokens": 50, "completion_tokens": 5}},
    ]
    events = [event for chunk in chunks for event in decoder.feed(chunk)] + decoder.finish()
    assert [TextDelta("Hi"), ToolCall("c", "n", {"a": 1}), Usage(50, 5), Stop("tool_use")] == events


def test_broken_tool_arguments_are_kept_for_the_error() -> None:
    """Arguments that are not a JSON object reach the tool as _invalid_json, not as an exception."""
    decoder = OpenAIDecoder()
    decoder.feed({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "n"}}]}}]})
    decoder.feed({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{oops"}}]}}]})
    assert ToolCall("c", "n", {"_invalid_json": "{oops"}) == decoder.finish()[0]


def test_anthropic_request_shape() -> None:
    """Tool results go in the user message before its text; the newest block is marked for caching."""
    wire = anthropic_wire(HISTORY)
    assert [
        {"role": "user", "content": [{"type": "text", "text": "fix it"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Reading."},
                {"type": "tool_use", "id": "t1", "name": "read_file", "input": {"path": "a.py"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "1\tx = 1", "is_error": False},
                {"type": "text", "text": "and be quick", "cache_control": {"type": "ephemeral"}},
            ],
        },
    ] == wire


def test_openai_request_shape() -> None:
    """A system message first; tool results become role tool messages right after the call."""
    assert [
        {"role": "system", "content": "be good"},
        {"role": "user", "content": "fix it"},
        {
            "role": "assistant",
            "content": "Reading.",
            "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "a.py"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "t1", "content": "1\tx = 1"},
        {"role": "user", "content": "and be quick"},
    ] == openai_wire("be good", HISTORY)


@pytest.mark.parametrize(
    ("status", "body", "retryable", "start"),
    [
        (429, {"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}}, True, "is rate limited"),
        (529, {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}, True, "is overloaded"),
        (200, {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}, True, "is overloaded"),
        (401, {"error": {"message": "bad key", "type": "invalid_request_error"}}, False, "refused the API key"),
        (404, {"error": "model 'x' not found"}, False, "does not know model 'm'"),
        (400, "plain text", False, "refused the request"),
    ],
)
def test_failures_are_classified(status: int, body: object, retryable: bool, start: str) -> None:
    """Rate limits and overloads (even mid-stream) are retried; key, model and request errors are not."""
    error = status_error(status, body, {}, endpoint="E", model="m", key_variable="K")
    assert (retryable, True) == (error.retryable, str(error).startswith(f"The model API at E {start}"))


def test_retry_wait_follows_the_server_then_backs_off() -> None:
    """The server's hint wins (capped at a minute); otherwise exponential backoff with jitter."""
    assert (0.5, 2.0, None) == (
        parse_retry_after({"retry-after-ms": "500", "retry-after": "9"}),
        parse_retry_after({"retry-after": "2"}),
        parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}),
    )
    assert [3.0, 60.0, 0.5, 1.0, 2.0, 30.0] == [
        backoff_delay(1, 3.0, 0.9),
        backoff_delay(1, 600.0, 0.9),
        backoff_delay(1, None, 0.0),
        backoff_delay(1, None, 1.0),
        backoff_delay(2, None, 1.0),
        backoff_delay(9, None, 1.0),
    ]
