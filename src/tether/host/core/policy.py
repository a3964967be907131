"""The permission rules of a session (DESIGN.md rule 4), as pure functions.

Each function here decides one rule and has its own unit test
(tests/unit/test_core_policy.py). The session core calls them; nothing here keeps state,
reads a clock or touches the file system (the one question about files, "is this path
inside the project?", is passed in as a function).

Rules:

- **Skipped permissions only when local**: ``--dangerously-skip-permissions`` approves by
  itself only while Remote Control is off (:func:`auto_allow`).
- **Withheld "always allow"**: under Remote Control, an "allow always" that would
  silently put the agent in a self-approving mode, or allow more than it says, is not
  offered (:func:`offered`).
- **Paths outside the project** are named on the approval (:func:`outside_paths`).
- **Approval timeout**: an approval expires ``timeout`` seconds after it opens
  (:func:`deadline`), and then resolves as a rejection.
- **Host-side coverage** (threat model, "Side effects need a granted approval"): a write
  or command the agent sends through ``fs/write_text_file`` or ``terminal/create`` runs
  only if an approval granted in the current turn covers it (:func:`covering`);
  otherwise the host asks itself, showing the exact path, or the full argv, working folder
  and every variable the agent added. A command that adds variables always asks.
- **Variables that change what runs** (``LD_PRELOAD``, ``PATH``, ...) are flagged on the
  approval (:func:`risky_variables`).
- **Cooldown for risky approvals** (against approval fatigue): a device's approval of a
  request of the ``risky`` tier counts only once the request has been shown
  ``RISKY_COOLDOWN`` seconds, and that long after the previous risky approval; a faster
  one is refused and the request stays pending (:func:`too_soon`). The terminal, at the
  machine itself, is not slowed.
- **Scoped "always allow"**: the agent's own "allow always" is replaced by tether's
  scoped ones under a permission policy (host/grants.py), never offered for the risky tier
  (:func:`scoped_options`).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from acp import schema

from tether.host.core.approvals import ALLOW_KINDS, Option

# Variables that change which program runs or what it loads: flagged on every approval.
RISKY_VARIABLES = frozenset({
    "PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP",
    "NODE_OPTIONS", "NODE_PATH", "PERL5LIB", "PERL5OPT", "RUBYOPT", "RUBYLIB", "BASH_ENV", "ENV",
    "PROMPT_COMMAND", "IFS", "SHELLOPTS", "GIT_SSH_COMMAND", "GIT_EXEC_PATH", "GIT_CONFIG_GLOBAL",
    "JAVA_TOOL_OPTIONS", "CLASSPATH", "GCONV_PATH", "SSL_CERT_FILE", "HOME",
})  # fmt: skip
RISKY_PREFIXES = ("LD_", "DYLD_", "PYTHON", "NODE_", "GIT_CONFIG_")
WRITE_KINDS = frozenset({"edit", "delete", "move"})
HOST_OPTIONS = (Option("allow", "Allow", "allow_once"), Option("deny", "Deny", "reject_once"))
RISKY_COOLDOWN = 3.0  # seconds a risky request is shown before a device may approve it, and between two such


def too_soon(tier: str | None, opened: float, last_risky: float | None, now: float,
             cooldown: float = RISKY_COOLDOWN) -> str | None:  # fmt: skip
    """Why a device's approval of a request of ``tier`` comes too fast (module doc), or None."""
    if tier != "risky":
        return None
    if now - opened < cooldown:
        return f"a risky request is approved only after it has been shown {cooldown:g} s: read it again, then approve"
    if last_risky is not None and now - last_risky < cooldown:
        return f"risky requests are approved one at a time, {cooldown:g} s apart: read it again, then approve"
    return None


def cooldown_left(tier: str | None, opened: float, last_risky: float | None, now: float,
                  cooldown: float = RISKY_COOLDOWN) -> float | None:  # fmt: skip
    """The seconds until a device's approval of a request of ``tier`` counts (:func:`too_soon`), or None if it does."""
    if tier != "risky":
        return None
    ready = max(opened, last_risky if last_risky is not None else opened) + cooldown
    return ready - now if ready > now else None


def scoped_options(options: list[Option], scopes: list[tuple[str, str]], policed: bool) -> list[Option]:
    """The options shown: under a policy (``policed``), the agent's own "allow always" gives way to tether's scopes.

    ``scopes`` are (option id, words) of what host/grants.py derived, narrowest first;
    they are offered only next to an "allow once" the agent offered (the host answers the
    agent with it). With no scope (a risky or not-understood request) no "always" is left.
    """
    if not policed:
        return options
    once = any(o.kind == "allow_once" for o in options)
    kept = [o for o in options if o.kind != "allow_always"]
    added = [Option(oid, f"Always allow {words} (this session)", "allow_always", words) for oid, words in scopes]
    if not once or not added:
        return kept if kept else options
    at = next((i for i, o in enumerate(kept) if o.kind == "allow_once"), 0) + 1
    return [*kept[:at], *added, *kept[at:]]


def deadline(now: float, timeout: float) -> float:
    """When an approval opened at ``now`` expires."""
    return now + timeout


def auto_allow(options: Iterable[Option], remote: bool, skip_permissions: bool) -> Option | None:
    """The option ``--dangerously-skip-permissions`` picks by itself: only when Remote Control is off."""
    if remote or not skip_permissions:
        return None
    options = list(options)
    return next((o for kind in ALLOW_KINDS for o in options if o.kind == kind), None)


def offered(options: list[Option], remote: bool, unconfined: str | None) -> tuple[list[Option], bool]:
    """The options shown on every screen, and whether an "allow always" was withheld.

    Under Remote Control, an "allow always" whose effect tether can neither confine nor
    show (``unconfined`` says what it does, a preset fact: it silently puts the agent in a
    self-approving mode, or allows far more than the one request) is not offered, as long
    as some other option is left to choose.
    """
    if not (remote and unconfined):
        return options, False
    kept = [o for o in options if o.kind != "allow_always"]
    if not kept or len(kept) == len(options):
        return options, False
    return kept, True


def tool_call_paths(tool_call: schema.ToolCallUpdate) -> list[str]:
    """Every path a tool call names: locations, diffs, and the usual raw-input keys."""
    paths = [loc.path for loc in tool_call.locations or []]
    paths += [c.path for c in tool_call.content or [] if isinstance(c, schema.FileEditToolCallContent)]
    raw = tool_call.raw_input if isinstance(tool_call.raw_input, dict) else {}
    paths += [str(raw[key]) for key in ("file_path", "path", "notebook_path") if isinstance(raw.get(key), str)]
    return list(dict.fromkeys(paths))


def outside_paths(paths: Iterable[str], inside: Callable[[str], bool]) -> list[str]:
    """The paths that leave the project folder."""
    return [path for path in paths if not inside(path)]


def flag_outside(title: str, outside: list[str]) -> str:
    """An approval title that says which paths leave the project (agents that edit natively are not bound)."""
    return f"{title} — OUTSIDE the project: {', '.join(outside)}" if outside else title


def risky_variables(env: Mapping[str, str]) -> list[str]:
    """The added variables that change what runs or what it loads."""
    return [name for name in env if name.upper() in RISKY_VARIABLES or name.upper().startswith(RISKY_PREFIXES)]


@dataclass(frozen=True, slots=True)
class Grant:
    """What one allowed approval lets the agent do through the host.

    ``paths`` are the resolved paths the approval named; ``kind`` its ACP tool kind;
    ``always`` whether the person chose "allow always". An ``execute`` approval covers the
    next command; one that names paths covers writes to those paths for the rest of the
    turn; one that names none covers the next single write (an edit kind) or the next
    write or command (any other kind). "Allow always" means what its option says: every
    write (an edit kind) or every command (``execute``) for the rest of the session.
    """

    paths: frozenset[str]
    kind: str
    always: bool = False

    def covers_write(self, path: str) -> bool:
        if self.kind == "execute":
            return False
        if self.always and self.kind in WRITE_KINDS:
            return True
        return path in self.paths if self.paths else True

    def covers_command(self) -> bool:
        if self.kind == "execute":
            return True
        return not self.paths and self.kind not in WRITE_KINDS

    def used_up(self) -> bool:
        """Whether one use consumes it (it names no paths, or it is a command, and is not "always")."""
        return not self.always and (not self.paths or self.kind == "execute")


def covering(grants: list[Grant], write: str | None) -> int | None:
    """The index of the first grant that covers a write to ``write`` (or a command when None)."""
    for index, grant in enumerate(grants):
        if grant.covers_write(write) if write is not None else grant.covers_command():
            return index
    return None


def command_line(argv: list[str]) -> str:
    """``argv`` as a shell would show it, quoting included."""
    return shlex.join(argv)


def command_title(argv: list[str], cwd: str, env: Mapping[str, str]) -> str:
    """The host approval for a command: the full argv, the working folder, every added variable."""
    title = f"Run {command_line(argv)} in {cwd}"
    if env:
        risky = set(risky_variables(env))
        shown = [f"{name}={value}" + (" (changes what runs)" if name in risky else "") for name, value in env.items()]
        title += " with " + ", ".join(shown)
    return title


def write_title(path: str) -> str:
    """The host approval for a write no granted approval covered."""
    return f"Write {path}"
