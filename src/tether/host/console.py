"""The terminal side of a session: renders the transcript, reads prompts and answers.

Rendering follows the same message stream the viewer gets; input becomes the same
messages the viewer sends (``FromScreen("terminal", ...)`` events for the session core).
Input comes line by line from a reader thread (stdin blocks; the event loop must not).
While an approval is pending, a line answers it: ``y`` allow once, ``a`` allow always,
``n`` deny, or the option's number. Otherwise a line is a prompt, or a command:
``/remote``, ``/stop``, ``/quit``, ``/allowed`` (the "always allow" grants of this session,
host/grants.py) and ``/allowed revoke N``.

Everything the agent controls (text, titles, paths, command output) is printed as plain
text with its control characters and escape sequences made visible (sanitize.py), never
highlighted, and with over-long lines cut: an agent cannot erase a warning, fake a prompt
or stall the terminal with one enormous word.
"""

from __future__ import annotations

import asyncio
import difflib
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rich.console import Console as RichConsole
from rich.markup import escape as rich_escape

from tether.host.core.approvals import ALLOW_KINDS, REJECT_KINDS
from tether.host.core.events import FromScreen
from tether.host.sanitize import bounded, visible
from tether.protocol.messages import (
    Append,
    Authenticate,
    Cancel,
    Decide,
    Ended,
    Entry,
    Message,
    Prompt,
    Revoke,
    SetMode,
    SetOption,
    Turn,
)

ANSWER_KINDS = {"y": ("allow_once",), "a": ("allow_always",), "n": REJECT_KINDS}
OUTPUT_TAIL = 20  # lines of command output shown in the terminal
OUTCOME_WORDS = {"allow_once": "approved once", "allow_always": "approved always"}

HELP = """Commands: /remote (Remote Control on/off), /stop (stop the turn), /mode [ID] (show or switch the
agent's mode), /option ID VALUE, /login [METHOD] (log the agent in, or retry after logging in here),
/allowed (what "always allow" covers in this session), /allowed revoke N, /quit, /help.
While an approval is pending: y = allow once, a = allow always (the scope its option shows), n = deny, or the
option's number."""


def read_lines(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str | None]) -> None:
    """Feed stdin lines into ``queue`` from a daemon thread; None at end of input."""

    def pump() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line.rstrip("\n"))
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=pump, name="tether-stdin", daemon=True).start()


TERMINAL = "terminal"  # this screen's name in the session core


def escape(text: str) -> str:
    """Agent-controlled text made safe to print: controls visible, lines bounded, markup escaped."""
    return rich_escape(bounded(visible(text)))


class Console:
    """Terminal renderer and input handler for one session (see module doc).

    ``handle`` is the session's one door (``HostSession.handle``); ``root`` the project
    folder (diff paths are shown relative to it).
    """

    name = TERMINAL

    def __init__(self, handle: Callable[[FromScreen], None], root: Path, out: RichConsole) -> None:
        self.handle_event = handle
        self.root = root
        self.out = out
        self._seen_status: dict[str, str] = {}
        self._shown_diffs: set[tuple[str, str]] = set()
        self._streaming = False
        self.pending: dict[str, dict[str, Any]] = {}  # approval id -> entry, oldest first
        self.controls: dict[str, Any] | None = None
        self.allowed: list[dict[str, Any]] = []  # the "always allow" grants in force (the ``allowed`` entry)
        self.question: tuple[str, Callable[[bool], None]] | None = None  # a yes/no question, answered first

    # -- questions (a device asking to pair: host/relay_link.py) -----------------------

    def ask(self, question: str, answer: Callable[[bool], None]) -> None:
        """Ask a yes/no question; the next input line that is not a /command answers it (only y is yes)."""
        self._end_stream()
        self.question = (question, answer)
        self.out.print(f"[bold yellow]{rich_escape(question)}[/bold yellow]", highlight=False)

    def withdraw(self, why: str) -> None:
        """The open question is moot (``why``, if there is anything to say)."""
        if self.question is not None:
            self.question = None
            if why:
                self.out.print(f"[dim]{rich_escape(why)}[/dim]")

    def _answer_question(self, line: str) -> None:
        assert self.question is not None
        _, answer = self.question
        self.question = None
        answer(line.strip().lower() in ("y", "yes"))

    def send(self, message: Message) -> None:
        """A message from this screen to the session."""
        self.handle_event(FromScreen(TERMINAL, message))

    # -- rendering ---------------------------------------------------------------------

    def deliver(self, message: Message) -> None:
        """Render one session message."""
        if isinstance(message, Append):
            self.out.print(bounded(visible(message.text)), end="", markup=False, highlight=False)
            self._streaming = True
            return
        self._end_stream()
        if isinstance(message, Entry):
            self._entry(message.entry)
        elif isinstance(message, Turn) and not message.running:
            self.out.print(f"[dim]· turn ended ({escape(message.stop_reason or 'unknown')})[/dim]")
        elif isinstance(message, Ended):
            self.out.print(f"[bold]Session ended:[/bold] {escape(message.reason)}")

    def _end_stream(self) -> None:
        if self._streaming:
            self.out.print()
            self._streaming = False

    def _entry(self, entry: dict[str, Any]) -> None:
        kind = entry["type"]
        if kind == "message":
            self._message(entry)
        elif kind == "tool_call":
            self._tool_call(entry)
        elif kind == "plan":
            self.out.print("[bold]Plan[/bold]")
            for item in entry["entries"]:
                mark = {"completed": "✓", "in_progress": "›"}.get(item["status"], "·")
                self.out.print(f"  {mark} {escape(item['content'])}")
        elif kind == "approval":
            if entry["state"] == "pending":
                self.pending[entry["id"]] = entry
            else:
                self.pending.pop(entry["id"], None)
            self._approval(entry)
        elif kind == "controls":
            before = self.controls["modes"]["current"] if self.controls else None
            self.controls = entry
            now = entry["modes"]["current"]
            if before is not None and now != before:
                self.out.print(f"Mode is now {escape(str(now))}.", highlight=False)
            else:
                self._controls(entry)
        elif kind == "login":
            self._login(entry)
        elif kind == "allowed":
            self.allowed = [g for g in entry.get("grants", []) if isinstance(g, dict)]

    def _controls(self, entry: dict[str, Any]) -> None:
        modes = entry["modes"]
        if modes["available"]:
            names = ", ".join(m["id"] + ("*" if m["self_approving"] else "") for m in modes["available"])
            self.out.print(f"[dim]Mode: {escape(str(modes['current']))}  (/mode ID; available: {escape(names)}; "
                           "* approves by itself)[/dim]")  # fmt: skip

    def _login(self, entry: dict[str, Any]) -> None:
        if entry["state"] == "done":
            self.out.print("[green]The agent is logged in.[/green]")
            return
        self.out.print("[bold yellow]The agent needs a login.[/bold yellow]")
        for method in entry["methods"]:
            if method["kind"] == "terminal":
                how = f"run `{method.get('command')}` in a terminal, then /login"
            elif method["kind"] == "env_var":
                how = f"set {', '.join(method.get('vars') or [])} and restart tether"
            else:
                how = f"/login {method['id']}"
            self.out.print(f"  {escape(method['name'])}: {escape(how)}", highlight=False)

    def _message(self, entry: dict[str, Any]) -> None:
        role, text = entry["role"], escape(entry["text"])
        if role == "user":
            sender = entry.get("device") or entry.get("by")
            who = "" if entry.get("by") in (None, TERMINAL) else f" [dim](from {escape(str(sender))})[/dim]"
            self.out.print(f"[bold cyan]you ›[/bold cyan]{who} {text}", highlight=False)
        elif role == "system":
            self.out.print(f"[yellow]{text}[/yellow]", highlight=False)
        else:
            style = "dim italic" if role == "thought" else ""
            self.out.print(f"[{style}]{text}[/{style}]" if style else text, end="", highlight=False)
            self._streaming = True

    def _tool_call(self, entry: dict[str, Any]) -> None:
        call_id, status = entry["id"], entry["status"]
        if call_id not in self._seen_status:
            self.out.print(f"[magenta]⚙ {escape(entry['title'])}[/magenta] [dim]({escape(entry['kind'])})[/dim]",
                           highlight=False)  # fmt: skip
        for item in entry["content"]:
            if item["type"] == "diff" and (call_id, item["path"]) not in self._shown_diffs:
                self._shown_diffs.add((call_id, item["path"]))
                self._diff(item)
        if self._seen_status.get(call_id) != status and status in ("completed", "failed"):
            for item in entry["content"]:
                if item["type"] == "terminal" and item["output"]:
                    tail = item["output"].rstrip("\n").splitlines()[-OUTPUT_TAIL:]
                    self.out.print(escape("\n".join(f"  │ {line}" for line in tail)), highlight=False)
            mark = "[green]✓ done[/green]" if status == "completed" else "[red]✗ failed[/red]"
            self.out.print(f"  {mark}")
        self._seen_status[call_id] = status

    def _diff(self, item: dict[str, Any]) -> None:
        old = (item["old_text"] or "").splitlines()
        new = item["new_text"].splitlines()
        path = Path(item["path"])
        if path.is_absolute() and path.is_relative_to(self.root):
            path = path.relative_to(self.root)
        lines = difflib.unified_diff(old, new, f"a/{path}", f"b/{path}", lineterm="")
        for line in lines:
            color = {"+": "green", "-": "red", "@": "cyan"}.get(line[:1], "")
            shown = escape(f"  {line}")
            self.out.print(f"[{color}]{shown}[/{color}]" if color else shown, highlight=False)

    def _approval(self, entry: dict[str, Any]) -> None:
        if entry["state"] == "pending":
            source = " [dim](asked by tether)[/dim]" if entry.get("source") == "host" else ""
            self.out.print(f"[bold yellow]Approve?[/bold yellow]{source} {escape(entry['title'])}", highlight=False)
            for number, option in enumerate(entry["options"], 1):
                self.out.print(f"  [{number}] {bounded(visible(option['name']))}", markup=False, highlight=False)
            self.out.print("[dim]  answer: y allow once · a allow always · n deny · or a number[/dim]")
            return
        if entry["state"] == "decided":
            option = next((o for o in entry["options"] if o["option_id"] == entry["outcome"]), None)
            kind = option["kind"] if option else ""
            word = OUTCOME_WORDS.get(kind, "denied")
            self.out.print(f"  → {word} ({escape(str(entry['decided_by']))})", highlight=False)
        else:
            self.out.print(f"  → {entry['state']}")

    # -- input -------------------------------------------------------------------------

    def answer(self, line: str) -> bool:
        """Try ``line`` as an answer to the oldest pending approval; True if it was one."""
        if not self.pending:
            return False
        approval = next(iter(self.pending.values()))
        options = approval["options"]
        word = line.strip().lower()
        option = None
        if word.isdigit() and 1 <= int(word) <= len(options):
            option = options[int(word) - 1]
        elif word in ANSWER_KINDS:
            kinds = ANSWER_KINDS[word] + (ALLOW_KINDS if word == "a" else ())
            option = next((o for kind in kinds for o in options if o["kind"] == kind), None)
        if option is None:
            self.out.print("[yellow]An approval is pending: answer y, a, n or an option number.[/yellow]")
            return True
        self.send(Decide(approval_id=approval["id"], option_id=option["option_id"]))
        return True

    def _mode(self, mode_id: str) -> None:
        if mode_id:
            self.send(SetMode(mode_id=mode_id))
            return
        if self.controls is not None:
            self._controls(self.controls)
        if self.controls is None or not self.controls["modes"]["available"]:
            self.out.print("[dim]This agent has no modes.[/dim]")

    def _allowed(self, words: list[str]) -> None:
        """``/allowed``: list the grants; ``/allowed revoke N``: end one."""
        if not words:
            if not self.allowed:
                self.out.print("Nothing is always allowed in this session.", highlight=False)
            for grant in self.allowed:
                self.out.print(f"  #{grant.get('number')} {escape(str(grant.get('text')))} "
                               f"[dim](by {escape(str(grant.get('by')))})[/dim]", highlight=False)  # fmt: skip
            return
        if len(words) == 2 and words[0] == "revoke" and words[1].isdigit():
            self.send(Revoke(number=int(words[1])))
            return
        self.out.print("[yellow]Usage: /allowed (list) or /allowed revoke N[/yellow]")

    async def handle(self, line: str, toggle_remote: Callable[[], Awaitable[None]] | None) -> bool:
        """Handle one input line; False when the user asked to quit."""
        # Commands work even while a question or an approval waits (/stop, /quit must never be swallowed).
        if not line.strip().startswith("/") and self.question is not None:
            self._answer_question(line)
            return True
        if not line.strip().startswith("/") and self.answer(line):
            return True
        command = line.strip()
        if command in ("/quit", "/exit"):
            return False
        if command == "/help":
            self.out.print(HELP, markup=False)
        elif command == "/stop":
            self.send(Cancel())
        elif command == "/remote":
            if toggle_remote is None:
                self.out.print("[yellow]/remote is only available in an interactive session.[/yellow]")
            else:
                await toggle_remote()
        elif command == "/mode" or command.startswith("/mode "):
            self._mode(command.removeprefix("/mode").strip())
        elif command.startswith("/option "):
            parts = command.split(maxsplit=2)
            if len(parts) != 3:
                self.out.print("[yellow]Usage: /option ID VALUE[/yellow]")
            else:
                value: str | bool = {"true": True, "false": False}.get(parts[2].lower(), parts[2])
                self.send(SetOption(option_id=parts[1], value=value))
        elif command == "/allowed" or command.startswith("/allowed "):
            self._allowed(command.removeprefix("/allowed").split())
        elif command == "/login" or command.startswith("/login "):
            self.send(Authenticate(method_id=command.removeprefix("/login").strip()))
        elif command.startswith("/"):
            self.out.print(f"[yellow]Unknown command {escape(command)}.[/yellow] " + escape(HELP))
        elif command and toggle_remote is not None:
            self.send(Prompt(text=command))
        return True
