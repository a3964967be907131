"""The permission rules, one pure function each."""

from __future__ import annotations

from acp import schema

from tether.host.core import policy
from tether.host.core.approvals import Option

ALLOW = Option("ok", "Allow", "allow_once")
ALWAYS = Option("ok-all", "Always", "allow_always")
REJECT = Option("no", "Deny", "reject_once")


def test_skip_permissions_picks_allow_only_when_local() -> None:
    """The flag chooses an allow option with Remote Control off; nothing with it on, or without the flag."""
    assert ALLOW == policy.auto_allow([REJECT, ALWAYS, ALLOW], remote=False, skip_permissions=True)
    assert None is policy.auto_allow([ALLOW], remote=True, skip_permissions=True)
    assert None is policy.auto_allow([ALLOW], remote=False, skip_permissions=False)


def test_always_is_withheld_only_where_it_would_self_approve_under_remote() -> None:
    """'Allow always' is dropped under Remote Control when it silently enters a self-approving mode."""
    options = [ALLOW, ALWAYS, REJECT]
    assert ([ALLOW, REJECT], True) == policy.offered(options, True, "it switches to acceptEdits")
    assert (options, False) == policy.offered(options, False, "it switches to acceptEdits")
    assert (options, False) == policy.offered(options, True, None)
    assert ([ALWAYS], False) == policy.offered([ALWAYS], True, "it switches to acceptEdits")  # nothing else to pick


def test_outside_paths_are_named() -> None:
    """Paths the inside-check rejects are the ones flagged on the approval title."""
    inside = lambda path: not path.startswith("/etc")  # noqa: E731
    outside = policy.outside_paths(["a.txt", "/etc/passwd"], inside)
    assert ["/etc/passwd"] == outside
    assert "Edit — OUTSIDE the project: /etc/passwd" == policy.flag_outside("Edit", outside)
    assert "Edit" == policy.flag_outside("Edit", [])


def test_tool_call_paths_come_from_locations_diffs_and_raw_input() -> None:
    """Every place an agent names a path counts, once each."""
    call = schema.ToolCallUpdate(
        tool_call_id="c",
        locations=[schema.ToolCallLocation(path="a")],
        content=[schema.FileEditToolCallContent(type="diff", path="b", new_text="")],
        raw_input={"file_path": "c", "path": "a"},
    )
    assert ["a", "b", "c"] == policy.tool_call_paths(call)


def test_deadline_is_open_time_plus_timeout() -> None:
    """An approval expires timeout seconds after it opened, on the core's clock."""
    assert 1600.0 == policy.deadline(1000.0, 600.0)


def test_risky_variables_are_those_that_change_what_runs() -> None:
    """LD_*, PATH, PYTHONPATH, NODE_OPTIONS and friends are risky; ordinary variables are not."""
    env = {"LD_PRELOAD": "x", "PATH": "/tmp", "PYTHONPATH": ".", "NODE_OPTIONS": "-r x", "DYLD_X": "1", "COLOR": "1"}
    assert ["LD_PRELOAD", "PATH", "PYTHONPATH", "NODE_OPTIONS", "DYLD_X"] == policy.risky_variables(env)


def test_grants_cover_what_they_name() -> None:
    """Path grants cover writes to their paths; execute grants one command; pathless edit grants one write."""
    path_grant = policy.Grant(frozenset({"/p/a"}), "edit")
    assert path_grant.covers_write("/p/a") and not path_grant.covers_write("/p/b")
    assert not path_grant.covers_command() and not path_grant.used_up()
    run = policy.Grant(frozenset(), "execute")
    assert run.covers_command() and not run.covers_write("/p/a") and run.used_up()
    edit = policy.Grant(frozenset(), "edit")
    assert edit.covers_write("/p/x") and not edit.covers_command() and edit.used_up()
    other = policy.Grant(frozenset(), "other")
    assert other.covers_write("/p/x") and other.covers_command()
    assert not policy.Grant(frozenset(), "execute", always=True).used_up()
    assert policy.Grant(frozenset({"/p/a"}), "edit", always=True).covers_write("/p/b")  # "always": every edit


def test_covering_finds_the_first_grant_that_covers() -> None:
    """covering returns the index of the grant to use, or None when the host must ask."""
    grants = [policy.Grant(frozenset({"/p/a"}), "edit"), policy.Grant(frozenset(), "execute")]
    assert 0 == policy.covering(grants, "/p/a")
    assert 1 == policy.covering(grants, None)
    assert None is policy.covering(grants, "/p/b")


def test_command_title_shows_argv_folder_and_variables() -> None:
    """The host's approval shows the full argv, quoted as a shell would, the folder and every added variable."""
    title = policy.command_title(["sh", "-c", "rm -rf build"], "/p", {"PATH": "/tmp", "X": "1"})
    assert "Run sh -c 'rm -rf build' in /p with PATH=/tmp (changes what runs), X=1" == title
