"""Agent text on the terminal: control characters and escape sequences shown, never obeyed."""

from __future__ import annotations

import unicodedata

import pytest

from tether.host.sanitize import LINE_LIMIT, bounded, visible


@pytest.mark.parametrize(
    ("hostile", "shown"),
    [
        ("done\n\x1b[1A\x1b[2Kall tests pass", "done\n␛[1A␛[2Kall tests pass"),
        ("rm -rf ~\r$ ls", "rm -rf ~␍$ ls"),
        ("\x1b]8;;https://evil.example\x1b\\docs\x1b]8;;\x1b\\", "␛]8;;https://evil.example␛\\docs␛]8;;␛\\"),
        ("\x1b]0;sudo password\x07", "␛]0;sudo password␇"),
        ("\x9b2J\x9d0;title\x9c", "\\x9b2J\\x9d0;title\\x9c"),
        ("abc\x08\x08\x08xyz\x7f", "abc␈␈␈xyz␡"),
        ("\x1bP+q\x1b\\ \x1bc \x1b(0", "␛P+q␛\\ ␛c ␛(0"),
        ("\x00\x0b\x0c", "␀␋␌"),
    ],
    ids=["erase-line", "carriage-return", "osc8-link", "osc-title", "c1", "backspace-del", "other-esc", "c0"],
)
def test_controls_are_shown_not_obeyed(hostile: str, shown: str) -> None:
    """Each control character becomes a visible stand-in and the rest of its sequence plain text."""
    assert shown == visible(hostile)


def test_newline_and_tab_pass_and_crlf_is_a_line_end() -> None:
    """Newlines and tabs stay; CR before LF is a plain line end (it cannot overwrite), a lone CR is shown."""
    assert "a\tb\nc\nd␍e" == visible("a\tb\r\nc\nd\re")


def test_no_control_character_survives() -> None:
    """Across the first planes' worth of code points, only newline and tab of category Cc remain."""
    everything = "".join(chr(code) for code in range(0x3000))
    left = {char for char in visible(everything) if unicodedata.category(char) == "Cc"}
    assert {"\n", "\t"} == left


def test_printable_text_is_unchanged() -> None:
    """Ordinary text, accents, emoji and box drawing pass as they are."""
    text = "héllo ✓ 🎉 ─┼─ naïve\tcafé\n"
    assert text == visible(text)


def test_bounded_cuts_only_over_long_lines() -> None:
    """A line longer than the limit is cut with a marker saying how much is missing; others stay whole."""
    text = "short\n" + "x" * 10 + "\n" + "y" * 4
    assert "short\nxxxxx… (5 more characters)\nyyyy" == bounded(text, limit=5)


def test_bounded_default_limit() -> None:
    """By default a line keeps LINE_LIMIT (4000) characters."""
    assert (4000, f"{'z' * 4000}… (1 more characters)") == (LINE_LIMIT, bounded("z" * 4001))
