"""The built-in agent's tools, each run on a temporary folder through a naive ACP client in-process."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from acp.schema import ClientCapabilities, FileSystemCapabilities

from tests.fakes.acp_client import NaiveClient
from tether.agents.builtin.model import ToolCall, ToolResult
from tether.agents.builtin.toolbox import Toolbox
from tether.agents.builtin.tools import Permissions, apply_edit, filter_listing, glob_regex, number_lines
from tether.errors import ToolError

UNIT = float(os.environ.get("TETHER_TEST_UNIT", "1.0"))  # seconds; every wait is a multiple


Make = Callable[..., tuple[Toolbox, NaiveClient]]


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    """Builds a toolbox on a naive client for a folder; reaps the client's commands afterwards."""
    clients: list[NaiveClient] = []

    def build(project: Path, answers: list[str] | None = None) -> tuple[Toolbox, NaiveClient]:
        client = NaiveClient(project, answers or [])
        clients.append(client)
        return Toolbox(client, "session-1", str(project), client.capabilities(), Permissions()), client

    yield build
    for client in clients:
        await client.aclose()


async def run(box: Toolbox, name: str, **arguments: object) -> ToolResult:
    return await asyncio.wait_for(box.run(ToolCall(f"call-{name}", name, dict(arguments))), 5 * UNIT)


def final(client: NaiveClient) -> dict[str, object]:
    """The only tool call's fields after all its updates."""
    (only,) = client.tool_calls().values()
    return only


# -- read_file --------------------------------------------------------------------------------


async def test_read_numbers_lines(tmp_path: Path, make: Make) -> None:
    """A read returns numbered lines and reports a completed read tool call."""
    (tmp_path / "a.txt").write_text("one\ntwo\n")
    box, client = make(tmp_path)
    result = await run(box, "read_file", path="a.txt")
    assert ToolResult("call-read_file", "1\tone\n2\ttwo") == result
    assert ("read", "completed", "Read a.txt") == (
        final(client)["kind"],
        final(client)["status"],
        final(client)["title"],
    )


async def test_read_range_says_where_to_go_on(tmp_path: Path, make: Make) -> None:
    """offset and limit select lines; a cut read says how to read on."""
    (tmp_path / "a.txt").write_text("".join(f"line {n}\n" for n in range(1, 11)))
    box, _ = make(tmp_path)
    result = await run(box, "read_file", path="a.txt", offset=3, limit=2)
    assert "3\tline 3\n4\tline 4\n[file continues after line 4: read on with offset=5]" == result.content


async def test_read_missing_file_is_a_tool_error(tmp_path: Path, make: Make) -> None:
    """Reading a file that does not exist gives the model an error, not a crash."""
    box, client = make(tmp_path)
    result = await run(box, "read_file", path="nope.txt")
    assert (True, "failed") == (result.is_error, final(client)["status"])
    assert result.content.startswith(f"Cannot read {tmp_path / 'nope.txt'}: ")


# -- list_files and search ----------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in ["README.md", "src/app.py", "src/util/helpers.py", ".git/config", "node_modules/x/index.js"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(f"# {name}\nTODO: tidy {name}\n")
    return tmp_path


async def test_list_top_level_marks_folders(tree: Path, make: Make) -> None:
    """The default pattern lists the folder itself, folders with a slash, skipping .git and dependencies."""
    box, client = make(tree)
    result = await run(box, "list_files")
    assert "README.md\nsrc/" == result.content
    assert (["find"], "search") == ([argv[0] for argv in client.commands], final(client)["kind"])


async def test_list_glob_recurses(tree: Path, make: Make) -> None:
    """``**/*.py`` finds Python files at any depth."""
    box, _ = make(tree)
    result = await run(box, "list_files", pattern="**/*.py")
    assert "src/app.py\nsrc/util/helpers.py" == result.content


async def test_list_in_a_subfolder_with_no_match(tree: Path, make: Make) -> None:
    """A pattern that matches nothing says so."""
    box, _ = make(tree)
    result = await run(box, "list_files", path="src", pattern="*.rs")
    assert f"No entries match '*.rs' in {tree / 'src'}." == result.content


async def test_search_finds_lines(tree: Path, make: Make) -> None:
    """Search returns path:line:text, relative to the project, skipping .git and dependencies."""
    box, client = make(tree)
    result = await run(box, "search", pattern="TODO: tidy .*py", include="*.py")
    assert "src/app.py:2:TODO: tidy src/app.py\nsrc/util/helpers.py:2:TODO: tidy src/util/helpers.py" == "\n".join(
        sorted(result.content.splitlines())
    )
    assert "grep" == client.commands[0][0]


async def test_search_pattern_is_never_an_option(tree: Path, make: Make) -> None:
    """A pattern that starts with a dash is searched for, not read as a grep option."""
    (tree / "flags.txt").write_text("run with -rf carefully\n")
    box, _ = make(tree)
    result = await run(box, "search", pattern="-rf")
    assert "flags.txt:1:run with -rf carefully" == result.content


async def test_search_without_matches_and_with_a_bad_regex(tree: Path, make: Make) -> None:
    """No match is a plain answer; an invalid expression is a tool error with grep's reason."""
    box, _ = make(tree)
    none = await run(box, "search", pattern="no such text")
    bad = await run(box, "search", pattern="(unclosed")
    assert ("No matches for 'no such text'.", False) == (none.content, none.is_error)
    assert bad.is_error and bad.content.startswith("grep failed (exit code 2)")


@pytest.mark.parametrize("tool", ["search", "list_files"])
@pytest.mark.parametrize("where", ["/etc", "../..", "up", "up/x", "sub/../.."])
async def test_search_and_list_stay_inside_the_project(tmp_path: Path, make: Make, tool: str, where: str) -> None:
    """A path outside the project (absolute, climbing, or a symlink out) is refused before any command runs."""
    project = tmp_path / "project"
    (project / "sub").mkdir(parents=True)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "secret.txt").write_text("TOKEN=1\n")
    os.symlink(tmp_path, project / "up")
    box, client = make(project)
    arguments = {"pattern": "TOKEN", "path": where} if tool == "search" else {"path": where}
    result = await run(box, tool, **arguments)
    assert (True, "failed", []) == (result.is_error, final(client)["status"], client.commands)
    assert "outside the project folder" in result.content


@pytest.mark.parametrize("tool", ["search", "list_files"])
async def test_search_and_list_accept_a_symlink_that_stays_inside(tree: Path, make: Make, tool: str) -> None:
    """A symlink to a folder inside the project is followed like the folder itself."""
    os.symlink(tree / "src", tree / "code")
    box, _ = make(tree)
    arguments = {"pattern": "TODO", "path": "code"} if tool == "search" else {"path": "code"}
    result = await run(box, tool, **arguments)
    assert (False, True) == (result.is_error, "app.py" in result.content)


# -- edit_file ------------------------------------------------------------------------------------


async def test_edit_replaces_the_unique_match_after_approval(tmp_path: Path, make: Make) -> None:
    """An approved edit is written, and its tool call carries the diff."""
    target = tmp_path / "app.py"
    target.write_text("x = 1\ny = 2\n")
    box, client = make(tmp_path)
    result = await run(box, "edit_file", path="app.py", old_string="y = 2", new_string="y = 3")
    assert (f"Edited {target}: replaced 1 occurrence.", "x = 1\ny = 3\n") == (result.content, target.read_text())
    diff = final(client)["content"][0]  # type: ignore[index]
    assert ("diff", str(target), "x = 1\ny = 2\n", "x = 1\ny = 3\n") == (
        diff["type"],
        diff["path"],
        diff["old_text"],
        diff["new_text"],
    )
    (request, options) = client.permission_requests[0]
    assert ("edit", "diff") == (request.kind, request.content[0].type)  # type: ignore[index]
    assert ["allow_once", "allow_always", "reject_once", "reject_always"] == [o.kind for o in options]


async def test_edit_that_matches_nothing_changes_nothing(tmp_path: Path, make: Make) -> None:
    """No match: a clear tool error, no permission asked, the file untouched."""
    (tmp_path / "app.py").write_text("x = 1\n")
    box, client = make(tmp_path)
    result = await run(box, "edit_file", path="app.py", old_string="x = 2", new_string="x = 3")
    assert (True, "failed", [], "x = 1\n") == (
        result.is_error,
        final(client)["status"],
        client.permission_requests,
        (tmp_path / "app.py").read_text(),
    )
    assert result.content.startswith(f"old_string was not found in {tmp_path / 'app.py'}.")


async def test_edit_that_matches_twice_changes_nothing(tmp_path: Path, make: Make) -> None:
    """Two matches: the model is told to add context or use replace_all."""
    (tmp_path / "app.py").write_text("x = 1\nx = 1\n")
    box, _ = make(tmp_path)
    result = await run(box, "edit_file", path="app.py", old_string="x = 1", new_string="x = 2")
    assert result.is_error and "occurs 2 times" in result.content and "replace_all" in result.content
    assert "x = 1\nx = 1\n" == (tmp_path / "app.py").read_text()


async def test_edit_replace_all(tmp_path: Path, make: Make) -> None:
    """replace_all replaces every occurrence."""
    (tmp_path / "app.py").write_text("x = 1\nx = 1\n")
    box, _ = make(tmp_path)
    result = await run(box, "edit_file", path="app.py", old_string="x = 1", new_string="x = 2", replace_all=True)
    assert (False, "x = 2\nx = 2\n") == (result.is_error, (tmp_path / "app.py").read_text())


async def test_rejected_edit_is_not_written(tmp_path: Path, make: Make) -> None:
    """A rejection leaves the file as it was and tells the model the user said no."""
    (tmp_path / "app.py").write_text("x = 1\n")
    box, client = make(tmp_path, ["reject_once"])
    result = await run(box, "edit_file", path="app.py", old_string="x = 1", new_string="x = 2")
    assert (True, "x = 1\n", "failed") == (result.is_error, (tmp_path / "app.py").read_text(), final(client)["status"])
    assert result.content.startswith("The user denied permission")


# -- write_file -----------------------------------------------------------------------------------


async def test_write_creates_a_file_with_a_whole_file_diff(tmp_path: Path, make: Make) -> None:
    """A new file is written (parents included); its diff has no old text."""
    box, client = make(tmp_path)
    result = await run(box, "write_file", path="pkg/new.py", content="print('hi')\n")
    assert "print('hi')\n" == (tmp_path / "pkg" / "new.py").read_text()
    assert f"Wrote {tmp_path / 'pkg' / 'new.py'} (1 lines)." == result.content
    diff = final(client)["content"][0]  # type: ignore[index]
    assert (None, "print('hi')\n") == (diff.get("old_text"), diff["new_text"])


async def test_write_replaces_a_file(tmp_path: Path, make: Make) -> None:
    """Overwriting shows the old text in the diff."""
    (tmp_path / "a.txt").write_text("old\n")
    box, client = make(tmp_path)
    await run(box, "write_file", path="a.txt", content="new\n")
    diff = final(client)["content"][0]  # type: ignore[index]
    assert ("new\n", "old\n", "new\n") == ((tmp_path / "a.txt").read_text(), diff["old_text"], diff["new_text"])


# -- run_command ----------------------------------------------------------------------------------


async def test_command_output_and_exit_code(tmp_path: Path, make: Make) -> None:
    """A command runs in the project through terminal/*, shows as a terminal, and reports its exit code."""
    box, client = make(tmp_path)
    result = await run(box, "run_command", command="pwd; echo oops >&2; exit 3")
    assert (f"Exit code: 3\n{tmp_path}\noops\n", False) == (result.content, result.is_error)
    call = final(client)
    assert ("execute", "failed", "terminal") == (call["kind"], call["status"], call["content"][0]["type"])  # type: ignore[index]


async def test_command_timeout_kills_it(tmp_path: Path, make: Make) -> None:
    """A command past its timeout is killed through terminal/kill."""
    box, client = make(tmp_path)
    result = await run(box, "run_command", command="echo started; sleep 30", timeout_seconds=0.3 * UNIT)
    assert result.content.startswith(f"Timed out after {0.3 * UNIT:g} s and was killed.\nstarted")
    assert ["term-1"] == client.killed


async def test_rejected_command_does_not_run(tmp_path: Path, make: Make) -> None:
    """A rejected command never reaches the terminal."""
    box, client = make(tmp_path, ["reject_once"])
    result = await run(box, "run_command", command="touch made")
    assert (True, [], False) == (result.is_error, client.commands, (tmp_path / "made").exists())


# -- permissions ------------------------------------------------------------------------------------


async def test_always_allow_is_per_kind(tmp_path: Path, make: Make) -> None:
    """ "Always allow" for edits stops the edit questions but not the command ones."""
    box, client = make(tmp_path, ["allow_always", "allow_once"])
    await run(box, "write_file", path="a.txt", content="1")
    await run(box, "write_file", path="b.txt", content="2")
    await run(box, "run_command", command="true")
    assert ["edit", "execute"] == [request.kind for request, _ in client.permission_requests]


async def test_always_reject_refuses_without_asking(tmp_path: Path, make: Make) -> None:
    """After "always reject" for commands, the next command is refused without a question."""
    box, client = make(tmp_path, ["reject_always"])
    await run(box, "run_command", command="true")
    second = await run(box, "run_command", command="true")
    assert (1, True, []) == (len(client.permission_requests), second.is_error, client.commands)
    assert "rejected all actions of this kind" in second.content


async def test_cancelled_permission_is_a_denial(tmp_path: Path, make: Make) -> None:
    """A permission request answered "cancelled" does not run the command."""
    box, client = make(tmp_path, ["cancelled"])
    result = await run(box, "run_command", command="true")
    assert (True, []) == (result.is_error, client.commands)


# -- plan, unknown tools, capabilities ------------------------------------------------------------


async def test_plan_is_an_acp_plan_update(tmp_path: Path, make: Make) -> None:
    """update_plan sends an ACP plan and no tool call."""
    box, client = make(tmp_path)
    entries = [{"content": "Read", "status": "completed"}, {"content": "Edit", "status": "in_progress"}]
    result = await run(box, "update_plan", entries=entries)
    (plan,) = client.of_kind("plan")
    assert ("Plan updated.", [("Read", "completed"), ("Edit", "in_progress")], {}) == (
        result.content,
        [(e.content, e.status) for e in plan.entries],
        client.tool_calls(),
    )


async def test_unknown_tool_and_bad_arguments(tmp_path: Path, make: Make) -> None:
    """An unknown tool or a missing argument is a tool error the model can correct."""
    box, _ = make(tmp_path)
    unknown = await run(box, "delete_everything")
    missing = await run(box, "read_file")
    assert unknown.is_error and unknown.content.startswith("Unknown tool 'delete_everything'")
    assert (True, "Missing or invalid argument 'path': a string is required.") == (missing.is_error, missing.content)


def test_tools_follow_client_capabilities(tmp_path: Path) -> None:
    """A client without terminals gets no command, list or search tools; ACP forbids calling them."""
    capabilities = ClientCapabilities(fs=FileSystemCapabilities(read_text_file=True, write_text_file=True))
    box = Toolbox(NaiveClient(tmp_path), "s", str(tmp_path), capabilities, Permissions())
    assert ["read_file", "edit_file", "write_file", "update_plan"] == [spec.name for spec in box.specs()]


# -- pure helpers ----------------------------------------------------------------------------------


def test_apply_edit_refuses_empty_and_no_op_edits() -> None:
    """An empty old_string or an edit that changes nothing is refused with a reason."""
    with pytest.raises(ToolError, match="use write_file"):
        apply_edit("abc", "", "x", False, "f")
    with pytest.raises(ToolError, match="nothing would change"):
        apply_edit("abc", "b", "b", False, "f")


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("*", "a.py", True),
        ("*", "src/a.py", False),
        ("**/*.py", "a.py", True),
        ("**/*.py", "src/deep/a.py", True),
        ("src/*.py", "src/a.py", True),
        ("src/*.py", "src/deep/a.py", False),
        ("src/**", "src/deep/a.py", True),
        ("?.md", "a.md", True),
        ("[!a]*.md", "a.md", False),
        ("[ab].md", "b.md", True),
    ],
)
def test_glob_semantics(pattern: str, path: str, matches: bool) -> None:
    """``*`` stays within a folder, ``**/`` crosses any number of them, classes and ``?`` work."""
    assert matches == bool(glob_regex(pattern).match(path))


def test_listing_filter_sorts_and_limits() -> None:
    """find's ``./`` prefixes go, folders keep their slash, the total counts what was cut."""
    assert (["a/", "b.py"], 3) == filter_listing("./c.py\n./b.py\n./a/\n", "*", limit=2)


def test_number_lines_cuts_long_lines() -> None:
    """Line numbers are right-aligned; an overlong line is cut with a note."""
    text = "\n".join(["x"] * 9 + ["y" * 2500])
    lines = number_lines(text, 1).splitlines()
    assert (" 1\tx", "10\t" + "y" * 2000 + "... [line cut at 2000 characters]") == (lines[0], lines[-1])
