"""Scoped "always allow" (host/grants.py), the cooldown for risky approvals (core/policy.py), and both in the core."""

from __future__ import annotations

import shlex

import pytest
from acp import schema
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.test_core_session import DEVICE, OPTIONS, ROOT, SESSION, WALL, Driver, notices, of, shown
from tether.host import grants
from tether.host.core import effects as fx
from tether.host.core import events as ev
from tether.host.core import policy as core_policy
from tether.host.grants import Grant, Scope, covering, derive, prefix
from tether.host.permissions import Policy, Request, parse_rule
from tether.protocol.messages import Decide, Entry, Revoke

STATE = "/home/dev/.local/state/tether"


def policy(*rules: tuple[str, str]) -> Policy:
    return Policy(tuple(parse_rule(a, t) for a, t in rules), ROOT, (STATE,))


def run(line: str) -> Request:
    return Request("execute", (), line)


def granted(*scopes: Scope) -> list[Grant]:
    return [Grant(n, s, "phone", 0.0) for n, s in enumerate(scopes, 1)]


def command(words: str) -> Scope:
    return Scope("execute", words=tuple(shlex.split(words)))


# -- deriving the scope ----------------------------------------------------------------------

# (request, the scopes offered as rule keys): narrowest first; none for what is risky or not understood.
DERIVED = [
    (run("git status"), ["execute: git status"]),
    (run("git status --short src"), ["execute: git status"]),
    (run("pytest tests/ -k slow"), ["execute: pytest tests/"]),
    (run("python3 -m pytest -q"), ["execute: python3 -m pytest"]),
    (run("npm run build"), ["execute: npm run build"]),
    (run("ls -la"), ["execute: ls"]),
    (Request("edit", (f"{ROOT}/src/app.py",)), [f"edit: {ROOT}/src/app.py", f"edit: {ROOT}/src/**"]),
    (Request("edit", (f"{ROOT}/README.md",)), [f"edit: {ROOT}/README.md"]),  # the whole project is never a scope
    # never for the risky tier, what the parser cannot classify, or several commands at once
    (run("git push origin main"), []),
    (run("pip install requests"), []),
    (run("curl https://example.com"), []),
    (run("rm -rf build"), []),
    (run("cat /etc/passwd"), []),
    (run("echo $(id)"), []),
    (run("git status; make"), []),
    (Request("execute", ()), []),
    (Request("edit", ("/etc/hosts",)), []),
    (Request("edit", (f"{STATE}/trust.json",)), []),
    (Request("delete", (f"{ROOT}/a.py",)), []),
    (Request("fetch", ()), []),
    (Request("read", (f"{ROOT}/a.py",)), []),  # runs without asking anyway
]


@pytest.mark.parametrize(("request_", "keys"), DERIVED)
def test_scopes_offered(request_: Request, keys: list[str]) -> None:
    """The scope of "always allow" is the parsed command prefix or the file and its folder; none when risky."""
    assert keys == [s.key() for s in derive(policy(), request_)]


def test_no_scope_where_a_rule_of_the_user_decides() -> None:
    """An ask rule keeps asking, an allow rule needs no grant: neither offers one."""
    assert [] == derive(policy(("ask", "execute: git")), run("git status"))
    assert [] == derive(policy(("allow", "execute: git status")), run("git status"))


def test_scope_shown_in_words() -> None:
    """What a person reads before choosing it."""
    assert "commands starting with `pytest tests/`" == command("pytest tests/").text(ROOT)
    assert "edits of src/app.py" == Scope("edit", path=f"{ROOT}/src/app.py").text(ROOT)
    assert "edits of any file in src/" == Scope("edit", path=f"{ROOT}/src", folder=True).text(ROOT)


def test_prefix_keeps_options_between_the_program_and_its_subcommand() -> None:
    """A prefix is never wider than what the line said."""
    assert ("git", "-C", "sub") == prefix(("git", "-C", "sub", "status"))
    assert ("make",) == prefix(("make",))


# -- what a grant covers ---------------------------------------------------------------------

# (grants, request, covered?)
COVERS = [
    ([command("git status")], run("git status --short"), True),
    ([command("git status")], run("git status; rm -rf ~"), False),
    ([command("git status")], run("git status; rm -rf build"), False),
    ([command("git status")], run("git status && make"), False),
    ([command("git status"), command("make")], run("git status && make test"), True),
    ([command("git status")], run("git statusx"), False),
    ([command("git status")], run("git stash"), False),
    ([command("git")], run("git push origin main"), False),  # risky: never by a grant
    ([command("ls")], run("ls /etc"), False),  # outside the project
    ([command("ls")], run("ls > out.txt"), False),  # not understood
    ([command("ls")], run("ls $(cat x)"), False),
    ([command("echo")], Request("execute", ()), False),  # no command text
    ([Scope("edit", path=f"{ROOT}/src/app.py")], Request("edit", (f"{ROOT}/src/app.py",)), True),
    ([Scope("edit", path=f"{ROOT}/src/app.py")], Request("edit", (f"{ROOT}/src/app.pyc",)), False),
    ([Scope("edit", path=f"{ROOT}/src", folder=True)], Request("edit", (f"{ROOT}/src/deep/x.py",)), True),
    ([Scope("edit", path=f"{ROOT}/src", folder=True)], Request("edit", (f"{ROOT}/srcx/x.py",)), False),
    ([Scope("edit", path=f"{ROOT}/src", folder=True)], Request("edit", (f"{ROOT}/src/../.env",)), False),
    ([Scope("edit", path=f"{ROOT}/src", folder=True)], Request("delete", (f"{ROOT}/src/x.py",)), False),
    ([Scope("edit", path=f"{ROOT}/src", folder=True)], run("touch src/x.py"), False),  # a path grant is no command
    ([command("touch")], Request("edit", (f"{ROOT}/x.py",)), False),  # and a command grant no edit
]


@pytest.mark.parametrize(("scopes", "request_", "covered"), COVERS)
def test_what_a_grant_covers(scopes: list[Scope], request_: Request, covered: bool) -> None:
    """Every simple command starts with a grant's words, or every path lies in its file or folder; never risky."""
    assert covered == (covering(policy(), granted(*scopes), request_) is not None)


def test_user_rules_beat_grants() -> None:
    """A deny or ask rule of the config binds whatever was always allowed."""
    for rule in (("ask", "execute: git status --short"), ("deny", "execute: git")):
        assert covering(policy(rule), granted(command("git status")), run("git status --short")) is None


WORDS = st.text(alphabet="abcdefgh-./_", min_size=1, max_size=6).filter(lambda w: w not in (".", ".."))
LINES = st.lists(st.sampled_from([
    "git status", "git status --short", "rm -rf ~", "rm -rf build", "curl x", "make", "ls src", "echo $(id)",
    "git push", "cat /etc/passwd", "ls > f", "sh -c ls", "pytest tests/", "git", "npm install x",
]), min_size=1, max_size=4)  # fmt: skip
JOINERS = st.sampled_from([";", "&&", "||", "|", "\n"])


@settings(max_examples=200, deadline=None)
@given(st.lists(WORDS, min_size=1, max_size=3), st.lists(WORDS, min_size=1, max_size=4))
def test_a_grant_never_covers_a_command_outside_its_prefix(words: list[str], argv: list[str]) -> None:
    """Property: a covered command starts with the grant's words, word for word."""
    line = shlex.join(argv)
    if covering(policy(), granted(Scope("execute", words=tuple(words))), run(line)) is not None:
        assert tuple(argv[: len(words)]) == tuple(words)


@settings(max_examples=200, deadline=None)
@given(LINES, st.lists(JOINERS, min_size=3, max_size=3))
def test_a_line_is_covered_only_if_each_command_is(parts: list[str], joiners: list[str]) -> None:
    """Property: `git status; rm -rf ~` is not covered by `git status`; no risky or unparsed line ever is."""
    line = parts[0] + "".join(f" {j} {p}" for j, p in zip(joiners, parts[1:], strict=False))
    every = granted(command("git status"), command("make"), command("ls"), command("git"), command("rm"))
    rules = policy()
    found = covering(rules, every, run(line))
    uncovered = {
        "rm -rf ~",
        "rm -rf build",
        "curl x",
        "echo $(id)",
        "git push",
        "cat /etc/passwd",
        "ls > f",
        "sh -c ls",
        "npm install x",
        "pytest tests/",
    }  # risky, not understood, or no grant names it
    if set(parts) & uncovered:
        assert found is None, line
    decision = rules.decide(run(line))
    if found is not None:
        assert decision.tier <= 1 and decision.action == "ask"


# -- the cooldown rule -----------------------------------------------------------------------


def test_cooldown_refuses_a_fast_risky_approval() -> None:
    """A risky request is approved only once it has been shown RISKY_COOLDOWN s, and that long after the last one."""
    cool = core_policy.RISKY_COOLDOWN
    assert core_policy.too_soon("risky", opened=100.0, last_risky=None, now=100.0 + cool - 0.1) is not None
    assert core_policy.too_soon("risky", opened=100.0, last_risky=None, now=100.0 + cool) is None
    assert core_policy.too_soon("risky", opened=100.0, last_risky=150.0, now=150.5) is not None
    assert core_policy.too_soon("risky", opened=100.0, last_risky=150.0, now=150.0 + cool) is None
    assert core_policy.too_soon("normal", opened=100.0, last_risky=99.9, now=100.0) is None
    assert core_policy.too_soon(None, opened=100.0, last_risky=None, now=100.0) is None


# -- in the session core ---------------------------------------------------------------------


def driver() -> Driver:
    d = Driver(preset=None).ready()
    d.core.permission_policy = policy()
    d.turn()
    return d


def ask_command(d: Driver, line: str, request: int) -> str:
    call = schema.ToolCallUpdate(tool_call_id=f"c{request}", title=f"Run {line}", kind="execute",
                                 raw_input={"command": line})  # fmt: skip
    d(ev.PermissionAsked(request, call, OPTIONS))
    return f"approval-{len(d.core.approvals._approvals)}"


def test_always_allow_is_scoped_shown_signed_and_revocable() -> None:
    """The scope replaces the agent's unscoped "always"; chosen (signed) it allows the next `git status` unasked,
    never `git push`; revoked, it asks again; the audit log records both."""
    d = driver()
    first = ask_command(d, "git status", 1)
    entry = d.core.transcript.entries[first]
    offered = [o for o in entry["options"] if o["kind"] == "allow_always"]
    assert [
        (
            "tether-always-0",
            "Always allow commands starting with `git status` (this session)",
            "commands starting with `git status`",
        )
    ] == [(o["option_id"], o["name"], o["scope"]) for o in offered]
    assert "always" not in [o["option_id"] for o in entry["options"]]  # the agent's own, unscoped: gone
    out = d.decide(first, "tether-always-0")
    assert [fx.Answer(1, "allow")] == of(fx.Answer, out)  # the agent hears "allow once"
    assert any(a.record.get("state") == "granted" and a.record.get("scope") == "execute: git status"
               for a in of(fx.Audit, out))  # fmt: skip
    allowed = [m.entry for m in shown(out) if isinstance(m, Entry) and m.entry["id"] == "allowed"]
    assert [1] == [g["number"] for g in allowed[-1]["grants"]]

    second = ask_command(d, "git status --short", 2)
    assert "always allow #1" == d.core.transcript.entries[second]["decided_by"]
    assert "decided" == d.core.transcript.entries[second]["state"]
    third = ask_command(d, "git status; rm -rf build", 3)
    assert "pending" == d.core.transcript.entries[third]["state"]

    out = d(ev.FromScreen("viewer", Revoke(number=1)))
    assert any("revoked" in n for n in notices(out))
    assert any(a.record.get("state") == "revoked" for a in of(fx.Audit, out))
    fourth = ask_command(d, "git status", 4)
    assert "pending" == d.core.transcript.entries[fourth]["state"]


def test_a_relay_cannot_widen_the_scope() -> None:
    """The scope is part of what the device signs: a signature over a wider scope than the host showed is refused."""
    d = driver()
    first = ask_command(d, "git status", 1)
    entry = d.core.transcript.entries[first]
    widened = {**entry, "options": [{**o, "scope": "commands starting with `git`"} if o.get("scope") else o
                                     for o in entry["options"]]}  # fmt: skip
    expires = int(WALL * 1000) + 60_000
    signature = DEVICE.sign(SESSION, widened, None, "tether-always-0", expires)
    decide = Decide(approval_id=first, option_id="tether-always-0", signature=signature, expires=expires)
    out = d(ev.FromScreen("viewer", decide, WALL))
    assert [] == of(fx.Answer, out)
    assert any("refused" in n for n in notices(out))
    assert {} == d.core.allowed


def test_no_always_for_a_risky_request_and_a_cooldown_on_approving_it() -> None:
    """`rm -rf build` offers no "always"; the device's approve within the cooldown is refused, later accepted."""
    d = driver()
    first = ask_command(d, "rm -rf build", 1)
    entry = d.core.transcript.entries[first]
    assert "risky" == entry["tier"] and core_policy.RISKY_COOLDOWN == entry["cooldown"]
    assert [] == [o for o in entry["options"] if o["kind"] == "allow_always"]
    out = d.decide(first, "allow")
    assert [] == of(fx.Answer, out)
    assert any("approved only after it has been shown" in n for n in notices(out))
    d.now += core_policy.RISKY_COOLDOWN
    assert [fx.Answer(1, "allow")] == of(fx.Answer, d.decide(first, "allow"))
    second = ask_command(d, "rm -rf dist", 2)
    d.now += core_policy.RISKY_COOLDOWN  # shown long enough, and the previous risky approval was that long ago
    assert [fx.Answer(2, "allow")] == of(fx.Answer, d.decide(second, "allow"))
    third = ask_command(d, "rm -rf out", 3)
    d.now += core_policy.RISKY_COOLDOWN / 2
    assert [] == of(fx.Answer, d.decide(third, "allow"))  # shown too briefly, and too soon after the last


def test_denying_a_risky_request_is_never_slowed() -> None:
    """The cooldown slows approvals only: a deny counts at once."""
    d = driver()
    first = ask_command(d, "rm -rf build", 1)
    assert [fx.Answer(1, "reject")] == of(fx.Answer, d.decide(first, "reject"))


def test_a_scoped_grant_covers_the_host_own_approval_of_a_command() -> None:
    """A command the agent runs without asking (terminal/create) is covered by the same grant."""
    d = driver()
    d(ev.CommandAsked(7, ("sh", "-c", "make test"), ROOT))
    approval = f"approval-{len(d.core.approvals._approvals)}"
    options = d.core.transcript.entries[approval]["options"]
    assert "commands starting with `make test`" in [o.get("scope") for o in options]
    assert [fx.Permit(7, True, "")] == of(fx.Permit, d.decide(approval, grants.option_id(0)))
    assert [fx.Permit(8, True, "")] == of(fx.Permit, d(ev.CommandAsked(8, ("sh", "-c", "make test -j2"), ROOT)))


def test_sandbox_auto_approve_is_shown_in_the_banner() -> None:
    """With --sandbox and sandbox.auto_approve, every screen keeps a banner saying what runs unasked."""
    d = Driver(preset=None)
    d.core.permission_policy = Policy((), ROOT, (STATE,), confined=True)
    out = d.ready()(ev.Tick())
    banner = d.core.transcript.entries.get("banner")
    assert banner is not None and banner["on"], out
    assert "sandbox.auto_approve: edits and commands the sandbox confines run without asking" in banner["text"]


def test_a_request_allowed_by_a_grant_lends_no_cover_to_the_next_command() -> None:
    """Asked about `git status` (allowed by the grant), the agent then sends `rm -rf build`: the host asks."""
    d = driver()
    d.decide(ask_command(d, "git status", 1), "tether-always-0")
    d(ev.CommandAsked(2, ("sh", "-c", "git status"), ROOT))  # the command it asked about: covered by the grant
    second = ask_command(d, "git status", 3)
    assert "always allow #1" == d.core.transcript.entries[second]["decided_by"]
    out = d(ev.CommandAsked(4, ("sh", "-c", "rm -rf build"), ROOT))
    assert [] == of(fx.Permit, out)  # asked, not covered
    out = d(ev.CommandAsked(5, ("sh", "-c", "git status --short"), ROOT))
    assert [fx.Permit(5, True, "")] == of(fx.Permit, out)


async def test_the_terminal_shows_the_scope_lists_and_revokes() -> None:
    """At the terminal: the option names its exact scope, `a` picks it, /allowed lists, /allowed revoke N sends it."""
    import io
    from pathlib import Path

    from rich.console import Console as RichConsole

    from tether.host.console import Console

    buffer, sent = io.StringIO(), []
    console = Console(sent.append, Path(ROOT), RichConsole(file=buffer, width=200, color_system=None))
    d = driver()
    for message in shown([e for e in d.effects if isinstance(e, fx.Show)] + d(ev.CommandAsked(1, ("git", "status"),
                                                                                                 ROOT))):  # fmt: skip
        console.deliver(message)
    assert "Always allow commands starting with `git status` (this session)" in buffer.getvalue()
    assert console.answer("a")
    assert "tether-always-0" == sent[-1].message.option_id
    for message in shown(d(sent[-1])):
        console.deliver(message)
    await console.handle("/allowed", None)
    assert "#1 commands starting with `git status`" in buffer.getvalue()
    await console.handle("/allowed revoke 1", None)
    assert Revoke(number=1) == sent[-1].message
    await console.handle("/allowed revoke x", None)
    assert "Usage: /allowed" in buffer.getvalue()
