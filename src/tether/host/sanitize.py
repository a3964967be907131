"""Agent text made safe to print on a terminal: controls shown, never obeyed.

Whatever an agent sends (messages, tool titles, command output, option names) reaches the
user's terminal. A terminal obeys control characters and escape sequences in it: an
agent could erase the line above (``ESC [1A ESC [2K``), return to the start of a line and
print a fake prompt over it (``CR``), hide a link target behind other text (OSC 8), set
the window title, or use the 8-bit C1 forms of all of these (``0x9B`` is CSI).

``visible`` therefore replaces every C0 control except newline and tab, DEL and every C1
control with a visible stand-in: the Unicode control pictures for C0 and DEL (``␛``,
``␍``, ``␡``), ``\\x9b``-style text for C1. An escape sequence loses its ESC (or its C1
introducer), so what follows is plain text: ``ESC [2K`` prints as ``␛[2K``, whatever the
sequence (CSI, OSC, DCS, or any other). A CR directly before LF is an ordinary line end
and is dropped rather than shown, as it cannot overwrite anything.

``bounded`` cuts single over-long lines (a minified file, a base64 blob) so that one line
cannot flood the screen. Pure functions; no I/O.
"""

from __future__ import annotations

import re

LINE_LIMIT = 4000
"""Characters of one line ``bounded`` keeps by default."""

_CONTROLS = re.compile(r"\r\n|[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _stand_in(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\r\n":
        return "\n"
    code = ord(char)
    if code < 0x20:
        return chr(0x2400 + code)  # CONTROL PICTURES: U+241B ␛ for ESC, U+240D ␍ for CR
    if code == 0x7F:
        return "\u2421"  # ␡
    return f"\\x{code:02x}"  # C1: no control pictures exist


def visible(text: str) -> str:
    """``text`` with every control character but newline and tab made visible (module doc)."""
    return _CONTROLS.sub(_stand_in, text)


def bounded(text: str, limit: int = LINE_LIMIT) -> str:
    """``text`` with each line longer than ``limit`` characters cut and marked ``… (N more characters)``."""
    if len(text) <= limit:
        return text
    lines = text.split("\n")
    return "\n".join(
        line if len(line) <= limit else f"{line[:limit]}… ({len(line) - limit} more characters)" for line in lines
    )
