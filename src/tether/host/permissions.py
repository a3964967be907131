"""The permission policy (DESIGN.md rule 4): the user's allow / ask / deny rules and risk tiers. Pure.

A Request is what an approval would let the agent do: its ACP tool kind, the paths it
names, and for a command the shell line. ``decide`` turns it into a Decision, by these
rules, in this order:

1. **Never from a session**: any request naming tether's own config or state (the trust
   list, device keys, this policy) is denied, whatever the rules say.
2. **deny beats ask beats allow**: a matching deny rule denies; a matching ask rule asks.
3. **Allow only what is understood**: an allow rule approves by itself only a request of
   the ``read`` or ``normal`` tier whose command, if any, the shell parser classified with
   certainty, every simple command of it covered by an allow rule. A command it cannot
   classify (substitutions, expansions, redirections to files, control flow, ``sh -c``,
   ``eval``, ``sudo`` ...) is asked, never auto-approved.
4. **Reads inside the project** (tool kinds ``read`` and ``search``) run without asking; a
   read-only command (``git status``) is of that tier too but still asks unless allowed.
5. **Confined by the sandbox**: with ``--sandbox`` and ``sandbox.auto_approve``, what
   rule 3 lets through (tier ``read`` or ``normal``, understood) runs without asking too.
6. Everything else is asked; tier ``risky`` (network, package installs, pushes, deletes,
   anything outside the project) is marked so that screens can ask for more than a tap.

Rules are written ``"KIND"`` or ``"KIND: PATTERN"`` in ``[permissions]`` of config.toml
(``allow``, ``ask``, ``deny`` lists). For ``execute`` the pattern is a command prefix in
words (``"execute: git status"``); for other kinds a path glob, relative to the project or
absolute (``"edit: src/**"``); ``*`` as the kind matches every kind. A project's
``.tether/config.toml`` may add ask and deny rules only (it may tighten, never loosen),
and is read only once the folder is trusted.

The shell line is parsed with tree-sitter's bash grammar, a real parser, not a regex.
"""

from __future__ import annotations

import enum
import fnmatch
import functools
import itertools
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

ACTIONS = ("allow", "ask", "deny")
KINDS = ("read", "edit", "delete", "move", "search", "execute", "think", "fetch", "switch_mode", "other", "*")


class Tier(enum.IntEnum):
    """How much a request can do, lowest first."""

    READ = 0  # reads and searches inside the project
    NORMAL = 1  # ordinary edits and commands inside the project: one tap
    RISKY = 2  # network, installs, pushes, deletes, outside the project, not understood: a stronger confirmation
    FORBIDDEN = 3  # tether's own config and trust files: never from a session


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule: ``action`` for requests of ``kind`` matching ``pattern`` (see module doc)."""

    action: str
    kind: str
    pattern: str = ""
    source: str = "config"

    def __str__(self) -> str:
        return f"{self.kind}: {self.pattern}" if self.pattern else self.kind


@dataclass(frozen=True, slots=True)
class Request:
    """What an approval would allow. ``paths`` are absolute; ``command`` is a shell line or None."""

    kind: str
    paths: tuple[str, ...] = ()
    command: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """``action`` (allow / ask / deny), the request's tier, and one line saying why."""

    action: str
    tier: Tier
    why: str
    rule: Rule | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """The rules in force for one session, and what the classifier needs to know about the machine."""

    rules: tuple[Rule, ...] = ()
    root: str = "/"
    protected: tuple[str, ...] = ()  # tether's config and state folders
    warnings: tuple[str, ...] = field(default=(), compare=False)
    confined: bool = False  # --sandbox with sandbox.auto_approve: what the sandbox confines needs no tap

    def inside(self, path: str) -> bool:
        return _within(path, self.root)

    def decide(self, request: Request) -> Decision:
        """The decision for ``request`` (module doc, rules 1 to 6)."""
        commands = parse_command(request.command) if request.command is not None else ()
        tier, why = classify(request, commands, self.inside, self.protected)
        if tier is Tier.FORBIDDEN:
            return Decision("deny", tier, why)
        for action in ("deny", "ask"):
            for rule in self.rules:
                if rule.action == action and _matches(rule, request, commands, self.root):
                    return Decision(action, tier, f"{action} rule '{rule}' ({rule.source})", rule)
        # An execute request without its command text (the agent sent only a title) is not understood either.
        understood = commands is not None and (request.command is not None or request.kind != "execute")
        if understood and tier <= Tier.NORMAL:
            allowed = [r for r in self.rules if r.action == "allow"]
            if commands:
                covering = [next((r for r in allowed if _matches(r, request, (c,), self.root)), None) for c in commands]
                if all(covering):
                    return Decision("allow", tier, f"allow rule '{covering[0]}'", covering[0])
            else:
                found = next((r for r in allowed if _matches(r, request, None, self.root)), None)
                if found is not None:
                    return Decision("allow", tier, f"allow rule '{found}'", found)
            if tier is Tier.READ and request.command is None:  # a read-only command still asks unless allowed
                return Decision("allow", tier, "a read inside the project")
            if self.confined:
                return Decision("allow", tier, f"{why}, confined by the sandbox (sandbox.auto_approve)")
        return Decision("ask", tier, why)


# -- rules from config ----------------------------------------------------------------------


class RuleError(ValueError):
    """A rule that cannot be read; the message names it."""


def parse_rule(action: str, text: str, source: str = "config") -> Rule:
    """``"KIND"`` or ``"KIND: PATTERN"`` as a Rule; RuleError naming what is wrong."""
    if action not in ACTIONS:
        raise RuleError(f"permissions.{action}: the lists are allow, ask and deny")
    if not isinstance(text, str):
        raise RuleError(f"permissions.{action}: each rule is a string like 'execute: git status', not {text!r}")
    kind, _, pattern = text.partition(":")
    kind, pattern = kind.strip(), pattern.strip()
    if kind not in KINDS:
        raise RuleError(f"permissions.{action}: {text!r} starts with {kind!r}; kinds are {', '.join(KINDS)}")
    return Rule(action, kind, " ".join(pattern.split()) if kind == "execute" else pattern, source)


def rules_from(table: Mapping[str, Any], source: str, tighten_only: bool = False) -> tuple[list[Rule], list[str]]:
    """The rules of a ``[permissions]`` table, and warnings (allow rules a project may not add)."""
    rules: list[Rule] = []
    warnings: list[str] = []
    for action, texts in table.items():
        if action not in ACTIONS:
            raise RuleError(f"{source}: [permissions] has {action!r}; the lists are allow, ask and deny")
        if not isinstance(texts, list):
            raise RuleError(f"{source}: permissions.{action} must be a list of rules")
        if tighten_only and action == "allow":
            warnings.append(f"{source}: its allow rules are ignored: a project's config may only add ask or deny rules")
            continue
        rules += [parse_rule(action, text, source) for text in texts]
    return rules, warnings


# -- the shell line ---------------------------------------------------------------------------

# Node types of a line whose every effect the parser shows: simple commands joined by
# && || ; and pipes, with words and quoted strings that expand nothing.
PLAIN_NODES = frozenset({
    "program", "list", "pipeline", "command", "command_name", "word", "raw_string", "string",
    "string_content", "number", "&&", "||", ";", "|", "\"", "'", "\n",
})  # fmt: skip
# Programs that run another program or a string as code: what they run is not in the parse.
INDIRECT = frozenset({
    "eval", "exec", "sh", "bash", "zsh", "dash", "ksh", "fish", "sudo", "doas", "su", "xargs", "env", "nohup",
    "time", "command", "builtin", "source", ".", "nice", "timeout", "watch", "parallel", "script", "busybox",
    "awk", "gawk", "sed",
})  # fmt: skip
# Interpreters run a file of the project like `make` does, but code given inline is not in the parse.
# Program -> the letters of its short options that take code (also inside combined flags: `-Sc`).
INLINE_CODE = {"python": "c", "python3": "c", "node": "ep", "perl": "eE", "ruby": "e", "php": "r", "bun": "e"}
INLINE_LONG = frozenset({"--eval", "--print", "eval"})
NETWORK = frozenset({"curl", "wget", "ssh", "scp", "sftp", "rsync", "nc", "ncat", "netcat", "telnet", "ftp", "ping",
                     "dig", "nslookup", "http", "https", "aria2c"})  # fmt: skip
DELETE = frozenset({"rm", "rmdir", "shred", "unlink", "truncate", "dd", "mkfs"})
# program -> subcommands that install, publish or reach the network.
RISKY_SUBCOMMANDS = {
    "git": {"push", "pull", "fetch", "clone", "ls-remote", "submodule", "remote", "clean", "reset", "rm", "send-email"},
    "pip": {"install", "download", "uninstall"}, "pip3": {"install", "download", "uninstall"},
    "uv": {"pip", "add", "sync", "tool", "run", "publish"}, "poetry": {"add", "install", "publish", "update"},
    "npm": {"install", "i", "add", "ci", "publish", "exec", "update", "uninstall"}, "npx": {"*"},
    "yarn": {"add", "install", "publish", "dlx"}, "pnpm": {"add", "install", "i", "publish", "dlx"},
    "apt": {"install", "remove", "purge"}, "apt-get": {"install", "remove", "purge"}, "brew": {"install"},
    "cargo": {"install", "add", "publish"}, "gem": {"install"}, "go": {"get", "install"},
    "docker": {"push", "pull", "run", "login"}, "twine": {"upload"}, "conda": {"install"},
    "find": {"-delete", "-exec", "-execdir", "-ok", "-okdir", "-fprint", "-fls"},
}  # fmt: skip
READ_ONLY = frozenset({"ls", "cat", "head", "tail", "wc", "grep", "rg", "pwd", "echo", "true", "file", "stat", "tree",
                       "diff", "which", "less", "sort", "uniq", "cut", "du", "df"})  # fmt: skip
READ_ONLY_GIT = frozenset({"status", "diff", "log", "show", "blame", "branch", "rev-parse", "ls-files"})


# tree-sitter-bash 0.25.1's scanner reads out of bounds (a segfault of the whole host) on some characters
# beyond U+FFFF, e.g. "{" then U+2C6CA; every character up to U+FFFF was checked in several contexts. A line
# with one is not classified (so never auto-approved) rather than parsed.
_BEYOND_BMP = re.compile("[\U00010000-\U0010ffff]")


@functools.cache
def _parser() -> Any:
    import tree_sitter
    import tree_sitter_bash

    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_bash.language()))


def parse_command(line: str) -> tuple[tuple[str, ...], ...] | None:
    """The simple commands of ``line`` as argv tuples, or None if the parse cannot show every effect.

    None for a syntax error, any expansion or substitution, a redirection, a variable
    assignment, control flow, a subshell, a function, or a program that runs code it is
    given (INDIRECT). An empty line is no command at all: ``()``.
    """
    if "\x00" in line or _BEYOND_BMP.search(line):
        return None
    tree = _parser().parse(line.encode())
    root = tree.root_node
    if root.has_error:
        return None
    commands: list[tuple[str, ...]] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if node.type not in PLAIN_NODES or node.is_missing:
            return None
        if node.type == "command":
            argv = _argv(node)
            if argv is None or not argv or os.path.basename(argv[0]) in INDIRECT:
                return None
            if _inline_code(argv):
                return None
            commands.append(argv)
            continue
        stack.extend(reversed(node.children))
    return tuple(commands)


def _inline_code(argv: tuple[str, ...]) -> bool:
    """Whether a program is given code on its command line (``python3 -c``, ``node -e``, ``git -c``...)."""
    program = os.path.basename(argv[0])
    if program == "git":  # `git -c core.pager=... status`: options before the subcommand can run anything
        leading = list(itertools.takewhile(lambda arg: arg.startswith("-"), argv[1:]))
        return any(arg in ("-c", "--config-env", "--exec-path") or arg.startswith("--exec-path=") for arg in leading)
    letters = INLINE_CODE.get(program)
    if letters is None:
        return False
    for arg in argv[1:]:
        if arg in INLINE_LONG or (arg.startswith("-") and not arg.startswith("--") and set(arg[1:]) & set(letters)):
            return True
    return False


def _argv(command: Any) -> tuple[str, ...] | None:
    words: list[str] = []
    for child in command.children:
        if child.type == "command_name":
            if len(child.children) != 1 or child.children[0].type != "word":
                return None
            words.append(child.children[0].text.decode())
        elif child.type == "word":
            text = child.text.decode()
            if any(ch in text for ch in "\\*?[{~$`"):
                return None  # globs, escapes and tilde expand: not what the line says
            words.append(text)
        elif child.type == "raw_string":
            words.append(child.text.decode()[1:-1])
        elif child.type == "string":
            if any(part.type != "string_content" and part.type != '"' for part in child.children):
                return None
            words.append(child.text.decode()[1:-1])
        elif child.type == "number":
            words.append(child.text.decode())
        else:
            return None
    return tuple(words)


# -- tiers --------------------------------------------------------------------------------------


def _within(path: str, folder: str) -> bool:
    path, folder = os.path.normpath(path), os.path.normpath(folder)
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def classify(
    request: Request,
    commands: tuple[tuple[str, ...], ...] | None,
    inside: Callable[[str], bool],
    protected: Iterable[str] = (),
) -> tuple[Tier, str]:
    """The request's tier and why (module doc)."""
    protected = tuple(protected)
    touched = [p for p in request.paths if any(_within(p, f) for f in protected)]
    if touched:  # its state holds device keys too: not even read
        return Tier.FORBIDDEN, f"tether's own settings, keys and trust files ({touched[0]}) are off limits to a session"
    outside = [p for p in request.paths if not inside(p)]
    if request.kind == "fetch":
        return Tier.RISKY, "network access"
    if request.kind == "delete":
        return Tier.RISKY, "a delete"
    if outside:
        return Tier.RISKY, f"outside the project: {outside[0]}"
    if request.kind == "execute" or request.command is not None:
        if request.command is None:
            return Tier.NORMAL, "a command"
        if commands is None:
            return Tier.RISKY, "a command the shell parser cannot classify with certainty"
        return _command_tier(commands, inside, protected)
    if request.kind in ("read", "search", "think"):
        return Tier.READ, "a read inside the project"
    return Tier.NORMAL, f"an {request.kind}" if request.kind[0] in "aeiou" else f"a {request.kind}"


def _command_tier(
    commands: tuple[tuple[str, ...], ...], inside: Callable[[str], bool], protected: tuple[str, ...]
) -> tuple[Tier, str]:
    tier, why = Tier.READ, "a read-only command inside the project"
    for argv in commands:
        program, args = os.path.basename(argv[0]), argv[1:]
        values = [a.split("=", 1)[1] if a.startswith("-") and "=" in a else a for a in args]  # --output=/x
        paths = [a for a in values if a.startswith("/") or a.startswith("..") or "/../" in a]
        if any(any(_within(p, f) for f in protected) for p in paths if p.startswith("/")):
            return Tier.FORBIDDEN, "tether's own settings or trust files are never touched from a session"
        found: tuple[Tier, str] | None = None
        if program in NETWORK:
            found = Tier.RISKY, f"network access ({program})"
        elif program in DELETE:
            found = Tier.RISKY, f"a delete ({program})"
        elif program in RISKY_SUBCOMMANDS and (
            "*" in RISKY_SUBCOMMANDS[program] or set(args) & RISKY_SUBCOMMANDS[program]
        ):
            found = Tier.RISKY, f"installs, publishes or reaches the network ({program})"
        elif any(not (p.startswith("/") and inside(p)) for p in paths):
            found = Tier.RISKY, f"a path outside the project ({paths[0]})"
        elif program in READ_ONLY or (program == "git" and args[:1] and args[0] in READ_ONLY_GIT):
            found = Tier.READ, why
        else:
            found = Tier.NORMAL, "a command"
        if found[0] > tier:
            tier, why = found
    return tier, why


def _matches(rule: Rule, request: Request, commands: tuple[tuple[str, ...], ...] | None, root: str) -> bool:
    if rule.kind != "*" and rule.kind != request.kind:
        return False
    if not rule.pattern:
        return True
    if request.command is not None and (rule.kind in ("execute", "*")):
        prefix = tuple(rule.pattern.split())
        if commands is None:
            # Not understood: a deny or ask rule still catches its program named anywhere in the line.
            return rule.action != "allow" and re.search(rf"(^|[^\w-]){re.escape(prefix[0])}($|[^\w-])",
                                                        request.command) is not None  # fmt: skip
        return any(argv[: len(prefix)] == prefix for argv in commands)
    pattern = rule.pattern if rule.pattern.startswith("/") else os.path.join(root, rule.pattern)
    return bool(request.paths) and any(fnmatch.fnmatchcase(p, pattern) for p in request.paths)


# -- requests from what the agent sends ------------------------------------------------------

SHELLS = ("/bin/sh", "sh", "/bin/bash", "bash", "/usr/bin/bash", "/usr/bin/sh")


def tool_call_request(kind: str, paths: Iterable[str], raw_input: Any) -> Request:
    """The Request of an agent's permission request: its kind, paths, and ``command`` from its raw input."""
    command = raw_input.get("command") if isinstance(raw_input, dict) else None
    if isinstance(command, list) and all(isinstance(word, str) for word in command):
        command = _join(command)
    return Request(kind, tuple(paths), command if isinstance(command, str) else None)


def command_request(argv: Iterable[str], env: Mapping[str, str]) -> Request:
    """The Request of a command the agent sends to the host (``terminal/create``).

    ``sh -c LINE`` is the line itself; added variables are shown as assignments, which the
    parser does not classify, so such a command is always asked (as the core's own rule says).
    """
    argv = list(argv)
    line = argv[2] if len(argv) == 3 and argv[0] in SHELLS and argv[1] == "-c" else _join(argv)
    assignments = " ".join(f"{name}={_join([value])}" for name, value in env.items())
    return Request("execute", (), f"{assignments} {line}" if assignments else line)


def _join(words: list[str]) -> str:
    import shlex

    return shlex.join(words)


def policy_from(
    user: Mapping[str, Any] | None,
    project: Mapping[str, Any] | None,
    root: str,
    protected: Iterable[str],
    user_source: str = "config.toml",
    project_source: str = ".tether/config.toml",
    confined: bool = False,
) -> Policy:
    """The Policy of a session: the user's ``[permissions]`` and, tighten-only, the project's."""
    rules: list[Rule] = []
    warnings: list[str] = []
    for table, source, tighten in ((user, user_source, False), (project, project_source, True)):
        if table:
            found, said = rules_from(table, source, tighten_only=tighten)
            rules += found
            warnings += said
    return Policy(tuple(rules), root, tuple(protected), tuple(warnings), confined)
