"""The approval lifecycle: pending leaves exactly once, by decide, cancel or expire."""

from __future__ import annotations

from tether.host.core.approvals import ApprovalBook, Option, State

OPTIONS = [
    Option("ok", "Allow", "allow_once"),
    Option("ok-all", "Always", "allow_always"),
    Option("no", "Deny", "reject_once"),
]


def book_with_one(deadline: float = 10.0) -> tuple[ApprovalBook, str]:
    book = ApprovalBook()
    approval = book.open("call-1", "Write a.txt", "edit", OPTIONS, deadline=deadline)
    return book, approval.id


def test_first_answer_wins() -> None:
    """The second screen's answer is refused once the first has decided."""
    book, approval_id = book_with_one()
    first = book.decide(approval_id, "ok", by="viewer")
    assert first is not None and (State.DECIDED, "ok", "viewer") == (first.state, first.outcome, first.decided_by)
    assert book.decide(approval_id, "no", by="terminal") is None
    assert "ok" == book.get(approval_id).outcome  # type: ignore[union-attr]


def test_unknown_option_is_refused() -> None:
    """Only options the agent offered can be chosen."""
    book, approval_id = book_with_one()
    assert book.decide(approval_id, "made-up", by="viewer") is None
    assert State.PENDING == book.get(approval_id).state  # type: ignore[union-attr]


def test_cancel_then_decide_is_refused() -> None:
    """A cancelled approval cannot be approved afterwards."""
    book, approval_id = book_with_one()
    assert State.CANCELLED == book.cancel(approval_id).state  # type: ignore[union-attr]
    assert book.decide(approval_id, "ok", by="viewer") is None


def test_expiry_resolves_as_rejection() -> None:
    """Nobody answering in time picks the agent's reject option."""
    book, approval_id = book_with_one(deadline=5.0)
    assert [] == book.expire_due(now=4.9)
    expired = book.expire_due(now=5.0)
    assert [(State.EXPIRED, "no")] == [(a.state, a.outcome) for a in expired]
    assert book.decide(approval_id, "ok", by="viewer") is None


def test_option_of_kind_prefers_order() -> None:
    """Options are chosen by ACP kind, whatever ids the agent uses."""
    book, approval_id = book_with_one()
    approval = book.get(approval_id)
    assert approval is not None
    assert "ok-all" == approval.option_of_kind("allow_always", "allow_once").option_id  # type: ignore[union-attr]
    assert approval.option_of_kind("reject_always") is None


def test_entry_shape() -> None:
    """The transcript entry carries the options and the state as text."""
    book, approval_id = book_with_one()
    entry = book.get(approval_id).to_entry()  # type: ignore[union-attr]
    assert ("approval", "pending", 3) == (entry["type"], entry["state"], len(entry["options"]))


def test_entry_carries_its_timeout_for_the_countdown() -> None:
    """An approval opened with a timeout shows it in its entry (the viewer's countdown); without one, no key."""
    book = ApprovalBook()
    timed = book.open("tool:1", "Write a", "edit", [Option("ok", "Allow", "allow_once")], deadline=610.0, timeout=600.0)
    untimed = book.open("tool:2", "Write b", "edit", [Option("ok", "Allow", "allow_once")], deadline=10.0)
    assert (600.0, False) == (timed.to_entry()["timeout"], "timeout" in untimed.to_entry())
