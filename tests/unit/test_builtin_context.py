"""Keeping the built-in agent's conversation under the context window: pure functions, no I/O."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

import pytest

from tether.agents.builtin.context import (
    DEFAULT_CHARS_PER_TOKEN,
    HEAD,
    KEEP_RECENT,
    MESSAGE_OVERHEAD,
    calibrate,
    estimate_tokens,
    fit,
)
from tether.agents.builtin.model import Message, Text, ToolResult, ToolUse


def user(text: str) -> Message:
    return Message("user", (Text(text),))


def exchange(index: int, output_chars: int, input_chars: int = 10) -> list[Message]:
    """One tool round trip: the model calls a tool, the result comes back."""
    call = ToolUse(f"t{index}", "run_command", {"command": "x" * input_chars})
    return [
        Message("assistant", (Text(f"step {index}"), call)),
        Message("user", (ToolResult(f"t{index}", "o" * output_chars),)),
    ]


def conversation(steps: int, output_chars: int) -> list[Message]:
    return [user("the task"), *[m for i in range(steps) for m in exchange(i, output_chars)]]


def assert_valid(messages: Sequence[Message]) -> None:
    """What both APIs require: user first, roles alternate, each tool call answered in the next message."""
    assert "user" == messages[0].role
    assert all(a.role != b.role for a, b in itertools.pairwise(messages))
    for index, message in enumerate(messages):
        calls = {b.id for b in message.blocks if isinstance(b, ToolUse)}
        if calls:
            answered = {b.tool_use_id for b in messages[index + 1].blocks if isinstance(b, ToolResult)}
            assert calls == answered
        results = {b.tool_use_id for b in message.blocks if isinstance(b, ToolResult)}
        if results:
            asked = {b.id for b in messages[index - 1].blocks if isinstance(b, ToolUse)}
            assert results == asked


def test_estimate_counts_characters_and_messages() -> None:
    """Tokens are characters over chars_per_token, plus a little per message."""
    messages = [user("a" * 400), user("b" * 400)]
    assert 800 // 4 + 2 * MESSAGE_OVERHEAD == estimate_tokens(messages)
    assert 800 // 2 + 2 * MESSAGE_OVERHEAD == estimate_tokens(messages, 2.0)


@pytest.mark.parametrize(
    ("chars", "tokens", "expected"),
    [(3000, 1000, 3.0), (10_000, 1000, DEFAULT_CHARS_PER_TOKEN), (1000, 1000, 1.5), (100, 0, DEFAULT_CHARS_PER_TOKEN)],
)
def test_calibration_stays_within_safe_bounds(chars: int, tokens: int, expected: float) -> None:
    """A measured ratio is used, but never one that would make us trim later than the default."""
    assert expected == calibrate(chars, tokens)


def test_under_budget_nothing_changes() -> None:
    """A conversation that fits is returned as it is."""
    messages = conversation(3, 100)
    fitted = fit(messages, budget=10_000)
    assert (tuple(messages), False) == (fitted.messages, fitted.changed)


def test_old_tool_output_is_trimmed_first() -> None:
    """Over budget, old tool results keep their head and a note; the recent messages stay whole."""
    messages = conversation(10, 4000)
    fitted = fit(messages, budget=estimate_tokens(messages) - 1)
    recent = fitted.messages[-KEEP_RECENT:]
    assert (tuple(messages[-KEEP_RECENT:]), 0) == (recent, fitted.dropped_messages)
    first_result = fitted.messages[2].blocks[0]
    assert isinstance(first_result, ToolResult)
    assert first_result.content.startswith("o" * HEAD + "\n[trimmed to save context: 3600 more characters removed]")
    assert estimate_tokens(fitted.messages) <= 0.7 * (estimate_tokens(messages) - 1)
    assert_valid(fitted.messages)


def test_trimming_stops_once_under_target() -> None:
    """Only as much old output is trimmed as needed to get under 70% of the budget."""
    messages = conversation(10, 4000)
    budget = int(estimate_tokens(messages) * 0.95)
    fitted = fit(messages, budget)
    untouched = [b for m in fitted.messages for b in m.blocks if isinstance(b, ToolResult) and len(b.content) == 4000]
    assert 0 < fitted.trimmed_blocks < 10 - KEEP_RECENT // 2 + 1
    assert len(untouched) > KEEP_RECENT // 2


def test_long_tool_input_is_trimmed_too() -> None:
    """A written file's content in an old tool call is cut like a tool output."""
    messages = [user("task"), *exchange(0, 10, input_chars=20_000), *conversation(4, 10)[1:]]
    fitted = fit(messages, budget=estimate_tokens(messages) - 1)
    call = fitted.messages[1].blocks[1]
    assert isinstance(call, ToolUse)
    assert call.input["command"].endswith("[trimmed to save context: 19600 more characters removed]")


def test_old_exchanges_are_dropped_when_trimming_is_not_enough() -> None:
    """Many small exchanges: the oldest pairs go, the task stays first with a note, the history stays valid."""
    messages = conversation(40, 100)
    fitted = fit(messages, budget=estimate_tokens(messages) // 3)
    first = fitted.messages[0]
    assert "the task" == first.blocks[0].text  # type: ignore[union-attr]
    note = first.blocks[-1]
    assert isinstance(note, Text)
    assert note.text.startswith(f"[Context note: {fitted.dropped_messages} earlier messages")
    assert (fitted.dropped_messages % 2, tuple(messages[-KEEP_RECENT:])) == (0, fitted.messages[-KEEP_RECENT:])
    assert len(messages) - fitted.dropped_messages == len(fitted.messages)
    assert_valid(fitted.messages)


def test_the_note_counts_all_removals() -> None:
    """Fitting again after more turns updates the one note with the running total."""
    messages = conversation(40, 100)
    once = fit(messages, budget=estimate_tokens(messages) // 3)
    grown = [*once.messages, *[m for i in range(40, 80) for m in exchange(i, 100)]]
    twice = fit(grown, budget=estimate_tokens(messages) // 3)
    notes = [b.text for b in twice.messages[0].blocks if isinstance(b, Text) and b.text.startswith("[Context")]
    total = once.dropped_messages + twice.dropped_messages
    assert [f"[Context note: {total} earlier messages"] == [
        n[: len(f"[Context note: {total} earlier messages")] for n in notes
    ]


def test_recent_output_is_trimmed_last_but_never_the_newest() -> None:
    """When only recent messages are left, their outputs are cut too, except in the newest message."""
    messages = conversation(3, 20_000)
    fitted = fit(messages, budget=2000)
    contents = [b.content for m in fitted.messages for b in m.blocks if isinstance(b, ToolResult)]
    assert ["trimmed", "trimmed", 20_000] == [len(c) if len(c) == 20_000 else "trimmed" for c in contents]
    assert_valid(fitted.messages)


def test_a_huge_first_prompt_is_kept() -> None:
    """The user's own task is never cut, even when it alone is over budget."""
    messages = [user("p" * 50_000)]
    assert (tuple(messages), False) == (fit(messages, budget=100).messages, fit(messages, budget=100).changed)


@pytest.mark.parametrize("seed", range(20))
def test_fitted_history_is_always_valid(seed: int) -> None:
    """Random conversations and budgets: the result always keeps the APIs' structure rules."""
    rng = random.Random(seed)
    messages = [user("task")]
    for index in range(rng.randint(1, 60)):
        calls = [ToolUse(f"t{index}-{n}", "read_file", {"path": "x" * rng.randint(1, 3000)}) for n in range(3)]
        calls = calls[: rng.randint(0, 3)]
        messages.append(Message("assistant", (Text("t" * rng.randint(0, 2000)), *calls)))
        results = tuple(ToolResult(c.id, "r" * rng.randint(0, 9000)) for c in calls)
        messages.append(Message("user", results or (Text("go on"),)))
    fitted = fit(messages, budget=rng.randint(500, 20_000))
    assert_valid(fitted.messages)
    assert messages[-1] == fitted.messages[-1]
