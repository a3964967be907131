"""The agent's tools as the model sees them, and the pure parts of running them.

=============  ========  ==========  ===============================================
tool           ACP kind  asks first  goes through
=============  ========  ==========  ===============================================
read_file      read      no          ``fs/read_text_file``
list_files     search    no          ``terminal/*``: ``find`` with a fixed argv
search         search    no          ``terminal/*``: ``grep -rnIE`` with a fixed argv
edit_file      edit      yes         ``fs/read_text_file`` then ``fs/write_text_file``
write_file     edit      yes         ``fs/write_text_file``
run_command    execute   yes         ``terminal/*`` (a shell command line)
update_plan    think     no          an ACP ``plan`` update, nothing on the machine
=============  ========  ==========  ===============================================

Listing and searching run ``find``/``grep`` through the host's ``terminal/*`` rather than
``fs/read_text_file``: ACP has no directory listing, so a listing cannot be built from
reads at all, and a search done by reading every file through the client would send the
whole tree over the pipe. A fixed argv (no shell; the model's pattern is one argument
after ``-e``/``--``) keeps them read-only, so, like reads, they need no permission, and
they stay inside the host's confinement and sandbox like any command. Their ``path`` must
lie inside the project (``toolbox.py`` checks it), and neither ``find`` nor ``grep -r``
follows a symlink met on the way down.

The I/O lives in ``toolbox.py``; everything here is plain functions on strings.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Literal

from acp.schema import PermissionOption, ToolKind

from tether.agents.builtin.model import ToolSpec
from tether.errors import ToolError

READ_LINES = 2000
LINE_CHARS = 2000
LIST_LIMIT = 500
SEARCH_LIMIT = 200
OUTPUT_LIMIT = 32 * 1024  # bytes of command output kept (the tail), for the model and the screen
COMMAND_TIMEOUT = 120.0
MAX_COMMAND_TIMEOUT = 600.0
# Folders no one wants listed or searched: version control, dependencies, caches.
SKIPPED_DIRS = (".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__", ".mypy_cache", ".tox")


def _object(properties: dict[str, object], required: Sequence[str]) -> dict[str, object]:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


_PATH = {"type": "string", "description": "File path, relative to the project folder or absolute."}

SPECS: dict[str, ToolSpec] = {
    spec.name: spec
    for spec in (
        ToolSpec(
            "read_file",
            "Read a text file. Lines come numbered as `N<TAB>text`; the numbers are not part of the file. "
            f"At most {READ_LINES} lines per call: use offset and limit for the rest of a long file.",
            _object(
                {
                    "path": _PATH,
                    "offset": {"type": "integer", "minimum": 1, "description": "First line to read (1-based)."},
                    "limit": {"type": "integer", "minimum": 1, "description": "Number of lines to read."},
                },
                ["path"],
            ),
        ),
        ToolSpec(
            "list_files",
            "List files and folders (folders end in /) matching a glob pattern under a folder. `*` matches within "
            "one path segment, `**/` any number of folders: `*` lists the folder itself, `**/*.py` every Python "
            f"file below it. Version control, dependency and cache folders are skipped. At most {LIST_LIMIT} entries.",
            _object(
                {
                    "path": {"type": "string", "description": "Folder to list (default: the project folder)."},
                    "pattern": {"type": "string", "description": "Glob pattern relative to path (default `*`)."},
                },
                [],
            ),
        ),
        ToolSpec(
            "search",
            "Search file contents with an extended regular expression (grep -E). Returns `path:line:text` lines, "
            f"at most {SEARCH_LIMIT}. Binary files and version control / dependency folders are skipped.",
            _object(
                {
                    "pattern": {"type": "string", "description": "Extended regular expression."},
                    "path": {"type": "string", "description": "File or folder to search (default: the project)."},
                    "include": {"type": "string", "description": "Only files whose name matches this glob, e.g. *.py"},
                },
                ["pattern"],
            ),
        ),
        ToolSpec(
            "edit_file",
            "Replace exact text in a file. old_string must match the file exactly (whitespace and indentation "
            "included; no line-number prefixes) and only once, unless replace_all is true: include enough "
            "surrounding lines to make it unique. Read the file first. The user approves each edit.",
            _object(
                {
                    "path": _PATH,
                    "old_string": {"type": "string", "description": "The exact text to replace."},
                    "new_string": {"type": "string", "description": "The text to put in its place."},
                    "replace_all": {"type": "boolean", "description": "Replace every occurrence (default false)."},
                },
                ["path", "old_string", "new_string"],
            ),
        ),
        ToolSpec(
            "write_file",
            "Create a file, or replace a whole file, with the given content. Prefer edit_file for changes to an "
            "existing file. The user approves each write.",
            _object({"path": _PATH, "content": {"type": "string"}}, ["path", "content"]),
        ),
        ToolSpec(
            "run_command",
            "Run a shell command line in the project folder and get its exit code and output (the last "
            f"{OUTPUT_LIMIT // 1024} KB). Use it for tests, builds, git and the like; not for reading or "
            "searching files (use the other tools). The user approves each command.",
            _object(
                {
                    "command": {"type": "string", "description": "The shell command line."},
                    "timeout_seconds": {
                        "type": "number",
                        "description": f"Stop the command after this long (default {COMMAND_TIMEOUT:.0f}, "
                        f"at most {MAX_COMMAND_TIMEOUT:.0f}).",
                    },
                },
                ["command"],
            ),
        ),
        ToolSpec(
            "update_plan",
            "Show the user your plan for a multi-step task, and keep it current: send the whole list each time, "
            "marking steps in_progress and completed as you go.",
            _object(
                {
                    "entries": {
                        "type": "array",
                        "items": _object(
                            {
                                "content": {"type": "string"},
                                "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]},
                                "priority": {"type": "string", "enum": ["high", "medium", "low"]},
                            },
                            ["content", "status"],
                        ),
                    }
                },
                ["entries"],
            ),
        ),
    )
}

KINDS: dict[str, ToolKind] = {
    "read_file": "read",
    "list_files": "search",
    "search": "search",
    "edit_file": "edit",
    "write_file": "edit",
    "run_command": "execute",
    "update_plan": "think",
}


def resolve_path(cwd: str, path: str) -> str:
    """An absolute, normalised path (ACP ``fs/*`` wants absolute paths); the host checks confinement."""
    return os.path.normpath(os.path.join(cwd, os.path.expanduser(path)))


def display_path(cwd: str, path: str) -> str:
    """``path`` relative to the project folder when inside it, for titles."""
    relative = os.path.relpath(path, cwd)
    return path if relative.startswith("..") else relative


def number_lines(text: str, first_line: int) -> str:
    """``text`` as ``N<TAB>line`` lines from ``first_line``, each line cut at LINE_CHARS."""
    lines = text.splitlines()
    width = len(str(first_line + max(len(lines) - 1, 0)))
    out = []
    for number, line in enumerate(lines, start=first_line):
        if len(line) > LINE_CHARS:
            line = f"{line[:LINE_CHARS]}... [line cut at {LINE_CHARS} characters]"
        out.append(f"{number:>{width}}\t{line}")
    return "\n".join(out)


def apply_edit(text: str, old: str, new: str, replace_all: bool, path: str) -> tuple[str, int]:
    """(new text, replacements) for an exact-text edit; ToolError when it does not match exactly once."""
    if not old:
        raise ToolError(f"old_string is empty: to create or overwrite {path}, use write_file.")
    if old == new:
        raise ToolError("old_string and new_string are the same: nothing would change.")
    count = text.count(old)
    if count == 0:
        raise ToolError(
            f"old_string was not found in {path}. Read the file again and copy the exact text, "
            "including whitespace and indentation, without the line-number prefixes."
        )
    if count > 1 and not replace_all:
        raise ToolError(
            f"old_string occurs {count} times in {path}. Include more surrounding lines so it matches once, "
            "or set replace_all to replace every occurrence."
        )
    return text.replace(old, new), count


def glob_regex(pattern: str) -> re.Pattern[str]:
    """A regex for a path glob: ``**/`` any folders (or none), ``*`` and ``?`` within one segment."""
    out = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            out.append(".*")
            index += 2
        elif pattern[index] == "*":
            out.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            out.append("[^/]")
            index += 1
        elif pattern[index] == "[" and (end := pattern.find("]", index + 2)) != -1:
            body = pattern[index + 1 : end].replace("\\", "\\\\")
            out.append(f"[^{body[1:]}]" if body.startswith("!") else f"[{body}]")
            index = end + 1
        else:
            out.append(re.escape(pattern[index]))
            index += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def find_argv(pattern: str) -> list[str]:
    """``find`` arguments listing everything under ``.`` the pattern could match (folders marked by ``/``).

    Without ``**`` the pattern cannot match deeper than its own segments, so ``-maxdepth``
    stops find from walking a large tree for ``*``. Only POSIX options and ``-maxdepth``
    (GNU and BSD both have it), so it runs on Linux and macOS alike.
    """
    argv = [".", "-mindepth", "1"]
    if "**" not in pattern:
        argv += ["-maxdepth", str(pattern.strip("/").count("/") + 1)]
    prune: list[str] = []
    for name in SKIPPED_DIRS:
        prune += [*(["-o"] if prune else []), "-name", name]
    return [
        *argv,
        "(",
        *prune,
        ")",
        "-prune",
        "-o",
        "-type",
        "d",
        "-exec",
        "printf",
        "%s/\\n",
        "{}",
        "+",
        "-o",
        "-print",
    ]


def filter_listing(output: str, pattern: str, limit: int = LIST_LIMIT) -> tuple[list[str], int]:
    """(sorted matching entries, total matches) from find's output, paths without ``./``."""
    regex = glob_regex(pattern.strip("/") or "*")
    matches = []
    for line in output.splitlines():
        entry = line[2:] if line.startswith("./") else line
        if entry and regex.match(entry.rstrip("/")):
            matches.append(entry)
    matches.sort()
    return matches[:limit], len(matches)


def grep_argv(pattern: str, path: str, include: str | None) -> list[str]:
    """``grep`` arguments for a recursive search; the pattern can never be read as an option."""
    argv = ["-rnIE"]
    argv += [f"--exclude-dir={name}" for name in SKIPPED_DIRS]
    if include:
        argv.append(f"--include={include}")
    return [*argv, "-e", pattern, "--", path]


def format_matches(output: str, limit: int = SEARCH_LIMIT) -> tuple[str, int]:
    """(at most ``limit`` grep lines, each cut to 300 characters; total lines)."""
    lines = [line[2:] if line.startswith("./") else line for line in output.splitlines() if line]
    lines = [line if len(line) <= 300 else f"{line[:300]}..." for line in lines]
    return "\n".join(lines[:limit]), len(lines)


def permission_options(kind: ToolKind) -> list[PermissionOption]:
    """All four ACP option kinds; "always" answers are remembered for this kind of tool, this session."""
    what = {"edit": "edits", "execute": "commands"}.get(kind, f"{kind} actions")
    return [
        PermissionOption(option_id="allow_once", name="Allow", kind="allow_once"),
        PermissionOption(option_id="allow_always", name=f"Always allow {what}", kind="allow_always"),
        PermissionOption(option_id="reject_once", name="Reject", kind="reject_once"),
        PermissionOption(option_id="reject_always", name=f"Always reject {what}", kind="reject_always"),
    ]


class Permissions:
    """The session's standing answers ("always allow/reject"), per ACP tool kind."""

    def __init__(self) -> None:
        self._standing: dict[str, Literal["allow", "reject"]] = {}

    def standing(self, kind: str) -> Literal["allow", "reject"] | None:
        """The remembered answer for this kind, if any."""
        return self._standing.get(kind)

    def record(self, kind: str, option_kind: str) -> bool:
        """Remember an "always" answer; return whether the chosen option allows the action."""
        if option_kind == "allow_always":
            self._standing[kind] = "allow"
        elif option_kind == "reject_always":
            self._standing[kind] = "reject"
        return option_kind in ("allow_once", "allow_always")
