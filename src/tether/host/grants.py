"""Scoped "always allow" for one session (issue 11: against approval fatigue). Pure.

A person answering an approval may choose "always allow" for a **scope** tether derives
from the request, shown in words before it is chosen: the parsed command prefix
(``git status``, ``pytest tests/``) or the path (the one file, or its folder). The grant
lasts for this session only and is revocable at any time. Rules, in this order:

1. **Only what is understood and ordinary**: a scope is offered, and a grant covers a
   request, only if the permission policy (host/permissions.py) would ask for it with no
   rule of the user's in play, its tier is ``read`` or ``normal`` (never network, installs,
   pushes, deletes, paths outside the project, tether's own files), and, for a command, the
   shell parser classified it with certainty. A grant never covers what the parser cannot
   classify, whatever the prefix.
2. **Every simple command covered**: a command line is covered when each of its simple
   commands starts with the words of some grant (``git status; rm -rf build`` is not covered
   by ``git status``: ``rm`` is risky, and no grant names it).
3. **A path grant covers its kind and its paths only**: an ``edit`` grant on a file covers
   edits of that file; on a folder, edits of anything under it. Never a command.
4. **User rules come first**: a matching deny or ask rule of the config beats any grant.

How a scope is derived is in SCOPES (by tool kind) and PREFIX_WORDS (by program): the
command prefix is the program and its first positional words (the subcommand), options
in between included, so the grant is never wider than what the line said.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from tether.host.permissions import Decision, Policy, Request, Tier, parse_command

# Tool kind -> the scopes offered for it, narrowest first.
SCOPES: dict[str, tuple[str, ...]] = {
    "execute": ("prefix",),
    "edit": ("file", "folder"),
}
# Program -> how many positional words after it belong to the prefix (default 1: its subcommand).
PREFIX_WORDS: dict[str, int] = {
    "npm": 2, "pnpm": 2, "yarn": 2, "bun": 2, "docker": 2, "kubectl": 2, "uv": 2, "poetry": 2, "cargo": 1,
    "git": 1, "go": 1, "make": 1,
}  # fmt: skip
DEFAULT_WORDS = 1
OPTION_PREFIX = "tether-always-"  # option ids tether adds to an approval for its scopes


@dataclass(frozen=True, slots=True)
class Scope:
    """What one "always allow" covers: the words of a command prefix, or a file or folder path (absolute)."""

    kind: str  # the ACP tool kind it covers: "execute" or "edit"
    words: tuple[str, ...] = ()
    path: str = ""
    folder: bool = False

    def key(self) -> str:
        """The scope as a rule would write it: ``execute: git status``, ``edit: /p/src/a.py``, ``edit: /p/src/**``."""
        if self.kind == "execute":
            return f"execute: {shlex.join(self.words)}"
        return f"{self.kind}: {self.path.rstrip('/')}/**" if self.folder else f"{self.kind}: {self.path}"

    def text(self, root: str) -> str:
        """The scope in words, exactly as a person chooses it."""
        if self.kind == "execute":
            return f"commands starting with `{shlex.join(self.words)}`"
        shown = os.path.relpath(self.path, root) if _within(self.path, root) else self.path
        if self.folder:
            return f"edits of any file in {shown.rstrip('/')}/"
        return f"edits of {shown}"


@dataclass(frozen=True, slots=True)
class Grant:
    """One "always allow" in force: its number (for ``/allowed revoke N``), scope, who chose it, when."""

    number: int
    scope: Scope
    by: str
    at: float

    def entry(self, root: str) -> dict[str, object]:
        return {"number": self.number, "scope": self.scope.key(), "text": self.scope.text(root), "by": self.by}


def _within(path: str, folder: str) -> bool:
    path, folder = os.path.normpath(path), os.path.normpath(folder)
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _assess(policy: Policy, request: Request) -> tuple[Decision, tuple[tuple[str, ...], ...] | None, bool]:
    """The policy's decision, the parsed commands, and whether rule 1 lets a grant apply at all."""
    decision = policy.decide(request)
    commands = parse_command(request.command) if request.command is not None else ()
    understood = commands is not None and (request.command is not None or request.kind != "execute")
    open_ = decision.action == "ask" and decision.rule is None and decision.tier <= Tier.NORMAL and understood
    return decision, commands, open_


def prefix(argv: tuple[str, ...]) -> tuple[str, ...]:
    """The prefix of one simple command a grant names: the program and its first positional words (see module doc)."""
    wanted = PREFIX_WORDS.get(os.path.basename(argv[0]), DEFAULT_WORDS)
    end, seen = 1, 0
    for index, word in enumerate(argv[1:], 1):
        if seen == wanted:
            break
        if not word.startswith("-"):
            seen += 1
            end = index + 1
    return argv[:end]


def derive(policy: Policy, request: Request) -> list[Scope]:
    """The scopes "always allow" may be offered with for ``request``, narrowest first; [] when none (rule 1)."""
    _, commands, open_ = _assess(policy, request)
    if not open_ or request.kind not in SCOPES:
        return []
    scopes: list[Scope] = []
    for how in SCOPES[request.kind]:
        if how == "prefix" and commands is not None and len(commands) == 1 and not request.paths:
            scopes.append(Scope(request.kind, words=prefix(commands[0])))
        elif how in ("file", "folder") and request.command is None and len(request.paths) == 1:
            path = os.path.normpath(request.paths[0])
            if how == "file":
                scopes.append(Scope(request.kind, path=path))
            elif (parent := os.path.dirname(path)) != os.path.normpath(policy.root) and policy.inside(parent):
                scopes.append(Scope(request.kind, path=parent, folder=True))  # the project itself is never one scope
    return scopes


def _covers(scope: Scope, request: Request, argv: tuple[str, ...] | None, path: str | None) -> bool:
    if scope.kind != request.kind:
        return False
    if argv is not None:
        return scope.kind == "execute" and argv[: len(scope.words)] == scope.words
    if path is None or scope.kind == "execute":
        return False
    return _within(path, scope.path) if scope.folder else os.path.normpath(path) == scope.path


def covering(policy: Policy, grants: Iterable[Grant], request: Request) -> Grant | None:
    """The grant that lets ``request`` run without asking (rules 1 to 4), or None."""
    grants = list(grants)
    _, commands, open_ = _assess(policy, request)
    if not open_ or not grants:
        return None
    if request.command is not None:
        if not commands or request.paths:
            return None
        found = [next((g for g in grants if _covers(g.scope, request, argv, None)), None) for argv in commands]
        return found[0] if all(found) else None
    if not request.paths:
        return None
    found = [next((g for g in grants if _covers(g.scope, request, None, p)), None) for p in request.paths]
    return found[0] if all(found) else None


def option_id(index: int) -> str:
    return f"{OPTION_PREFIX}{index}"


def is_option(option_id_: str | None) -> bool:
    return bool(option_id_) and str(option_id_).startswith(OPTION_PREFIX)
