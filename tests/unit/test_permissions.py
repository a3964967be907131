"""The permission policy: rules, tiers, the shell parser, and never auto-approving what is not understood."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tether.host.permissions import (
    Policy,
    Request,
    RuleError,
    Tier,
    parse_command,
    parse_rule,
    rules_from,
)

ROOT = "/work/app"
STATE = "/home/dev/.local/state/tether"


def policy(*rules: tuple[str, str], source: str = "config") -> Policy:
    return Policy(tuple(parse_rule(a, t, source) for a, t in rules), ROOT, (STATE,))


def run(line: str) -> Request:
    return Request("execute", (), line)


# (rules, request, expected action, expected tier)
TABLE = [
    # reads inside the project run without asking; outside they are risky and asked
    ((), Request("read", (f"{ROOT}/a.py",)), "allow", Tier.READ),
    ((), Request("read", ("/home/dev/.ssh/id_ed25519",)), "ask", Tier.RISKY),
    ((), Request("search", ()), "allow", Tier.READ),
    # ordinary edits ask with one tap; allow rules may approve them
    ((), Request("edit", (f"{ROOT}/src/x.py",)), "ask", Tier.NORMAL),
    ((("allow", "edit: src/**"),), Request("edit", (f"{ROOT}/src/x.py",)), "allow", Tier.NORMAL),
    ((("allow", "edit: src/**"),), Request("edit", (f"{ROOT}/docs/x.md",)), "ask", Tier.NORMAL),
    # deny beats ask beats allow
    ((("allow", "edit"), ("deny", "edit: .env")), Request("edit", (f"{ROOT}/.env",)), "deny", Tier.NORMAL),
    ((("allow", "edit"), ("ask", "edit: *.lock")), Request("edit", (f"{ROOT}/uv.lock",)), "ask", Tier.NORMAL),
    # tether's own files: denied even with an allow-everything rule
    ((("allow", "*"),), Request("edit", (f"{STATE}/trust.json",)), "deny", Tier.FORBIDDEN),
    ((("allow", "*"),), run(f"cp x {STATE}/trust.json"), "deny", Tier.FORBIDDEN),
    ((("allow", "*"),), Request("read", (f"{STATE}/device-key.json",)), "deny", Tier.FORBIDDEN),
    # commands ask unless allowed (a read-only one is of the read tier); risky ones are marked
    ((), run("git status && ls -la src | wc -l"), "ask", Tier.READ),
    (
        (("allow", "execute: git status"), ("allow", "execute: ls"), ("allow", "execute: wc")),
        run("git status && ls -la src | wc -l"),
        "allow",
        Tier.READ,
    ),
    ((), run("cat /etc/passwd"), "ask", Tier.RISKY),
    ((), run("make test"), "ask", Tier.NORMAL),
    ((("allow", "execute: make test"),), run("make test"), "allow", Tier.NORMAL),
    ((("allow", "execute: make test"),), run("make test && make deploy"), "ask", Tier.NORMAL),
    ((("allow", "execute: make"),), run("make test; make lint"), "allow", Tier.NORMAL),
    ((("allow", "execute"),), run("git push origin main"), "ask", Tier.RISKY),
    ((("allow", "execute"),), run("pip install requests"), "ask", Tier.RISKY),
    ((("allow", "execute"),), run("curl https://example.com"), "ask", Tier.RISKY),
    ((("allow", "execute"),), run("rm -rf build"), "ask", Tier.RISKY),
    ((("deny", "execute: rm"),), run("ls && rm -rf build"), "deny", Tier.RISKY),
    # not understood: asked even with allow-everything; a deny rule still catches its program
    ((("allow", "execute"), ("allow", "*")), run("echo $(cat secret)"), "ask", Tier.RISKY),
    ((("allow", "execute"),), run("ls > listing.txt"), "ask", Tier.RISKY),
    ((("allow", "execute"),), run("bash -c 'ls'"), "ask", Tier.RISKY),
    ((("deny", "execute: rm"),), run("x=1; $(echo rm) -rf / || rm -rf ."), "deny", Tier.RISKY),
    # an execute request whose command text the agent did not send is asked, whatever the rules allow
    ((("allow", "execute"), ("allow", "*")), Request("execute", ()), "ask", Tier.NORMAL),
    # interpreters: a project file is a command like any other, inline code is not understood
    ((("allow", "execute: python3 -m pytest"),), run("python3 -m pytest -q"), "allow", Tier.NORMAL),
    ((("allow", "execute: python3"),), run("python3 -c 'import os'"), "ask", Tier.RISKY),
    ((("allow", "execute: git switch"),), run("git switch -c topic"), "allow", Tier.NORMAL),
    # a path hidden in an option is still a path
    ((("allow", "execute: sort"),), run("sort --output=/etc/motd notes.txt"), "ask", Tier.RISKY),
    # network tool kinds and deletes are risky
    ((("allow", "*"),), Request("fetch", ()), "ask", Tier.RISKY),
    ((("allow", "delete"),), Request("delete", (f"{ROOT}/old.txt",)), "ask", Tier.RISKY),
]


@pytest.mark.parametrize(("rules", "request_", "action", "tier"), TABLE)
def test_policy_table(rules: tuple[tuple[str, str], ...], request_: Request, action: str, tier: Tier) -> None:
    """Each row: the rules, a request, the decision and the tier (module doc of permissions.py)."""
    decision = policy(*rules).decide(request_)
    assert (action, tier) == (decision.action, decision.tier), decision.why


@pytest.mark.parametrize(
    ("line", "argv"),
    [
        ("git status", (("git", "status"),)),
        ("cat 'a b' \"c d\"", (("cat", "a b", "c d"),)),
        ("ls; echo hi\nwc -l", (("ls",), ("echo", "hi"), ("wc", "-l"))),
        ("", ()),
    ],
)
def test_parser_reads_plain_lines(line: str, argv: tuple[tuple[str, ...], ...]) -> None:
    """Plain simple commands joined by ; && || | and newlines are read word by word."""
    assert argv == parse_command(line)


@pytest.mark.parametrize(
    "line",
    ["echo $(id)", "echo `id`", "echo $HOME", 'echo "$HOME"', "ls *.py", "ls ~", "ls > f", "ls 2>&1", "cat <<E\nx\nE",
     "X=1 ls", "(ls)", "{ ls; }", "if true; then ls; fi", "for f in a; do ls; done", "f() { ls; }", "ls &",
     "sh -c ls", "sudo ls", "env X=1 ls", "xargs rm", "eval ls", "ls 'unclosed", "diff <(ls) <(ls)", "ls \\x",
     "python3 -c 'import os'", "node -e 1", "python3 -Sc pass", "git -c core.pager=less log", "awk '{print}' f",
     "ls\x00rm"],
)  # fmt: skip
def test_parser_refuses_what_it_cannot_show(line: str) -> None:
    """Expansions, substitutions, redirections, control flow and code runners are not classified."""
    assert None is parse_command(line)


def test_project_config_may_only_tighten() -> None:
    """A project's allow rules are dropped with a warning; its ask and deny rules apply, above the user's allows."""
    rules, warnings = rules_from({"allow": ["execute"], "deny": ["edit: .github/**"], "ask": ["execute: make"]},
                                 ".tether/config.toml", tighten_only=True)  # fmt: skip
    assert ["deny", "ask"] == [r.action for r in rules]
    assert 1 == len(warnings) and "may only add ask or deny rules" in warnings[0]
    user = [parse_rule("allow", "edit"), parse_rule("allow", "execute: make")]
    combined = Policy((*user, *rules), ROOT, ())
    assert "deny" == combined.decide(Request("edit", (f"{ROOT}/.github/workflows/ci.yml",))).action
    assert "ask" == combined.decide(run("make all")).action
    assert "allow" == combined.decide(Request("edit", (f"{ROOT}/src/a.py",))).action


@pytest.mark.parametrize(
    ("action", "text", "message"),
    [
        ("permit", "edit", "allow, ask and deny"),
        ("allow", "bash: ls", "kinds are"),
        ("deny", 3, "each rule is a string"),
    ],
)
def test_bad_rules_are_named(action: str, text: object, message: str) -> None:
    """A rule that cannot be read is an error naming it, never silently ignored."""
    with pytest.raises(RuleError, match=message):
        parse_rule(action, text)  # type: ignore[arg-type]


# Shell-ish text: words, quotes, metacharacters and expansions, glued together at random.
PIECES = st.sampled_from([
    "ls", "rm", "git", "status", "push", "-rf", "/", ".", "src", "a.txt", " ", " ", ";", "&&", "||", "|", "&", "\n",
    "$", "$(", ")", "`", "(", "{", "}", "'", '"', ">", "<", "2>&1", "*", "?", "~", "\\", "=", "#", "!", "<<", "x",
    "eval", "sh", "-c", "echo", "${", "[[", "]]", "if", "then", "fi", "\t", "%", "^",
])  # fmt: skip
SHELLISH = st.lists(PIECES, max_size=14).map("".join) | st.text(max_size=40)
ALLOW_ALL = policy(("allow", "execute"), ("allow", "*"), ("allow", "execute: rm"), ("allow", "execute: git"))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SHELLISH)
def test_unclassifiable_commands_are_never_auto_approved(line: str) -> None:
    """Whatever the rules allow, a line the parser cannot classify is asked or denied, never allowed."""
    decision = ALLOW_ALL.decide(run(line))
    if parse_command(line) is None:
        assert "allow" != decision.action, (line, decision)
    if decision.action == "allow":
        assert decision.tier <= Tier.NORMAL


@pytest.mark.parametrize(
    ("request_", "action"),
    [
        (Request("edit", (f"{ROOT}/src/a.py",)), "allow"),
        (run("make test"), "allow"),
        (run("git status"), "allow"),
        (run("curl https://example.com"), "ask"),  # network: never by itself
        (run("rm -rf build"), "ask"),  # deletes cannot be undone, confined or not
        (run("echo $(id)"), "ask"),  # not understood
        (Request("edit", ("/etc/hosts",)), "ask"),  # outside the project
        (Request("edit", (f"{STATE}/trust.json",)), "deny"),
    ],
)
def test_sandbox_auto_approve(request_: Request, action: str) -> None:
    """With the sandbox confining the agent, ordinary edits and understood commands need no tap; the rest still asks."""
    confined = Policy((parse_rule("deny", "edit: secrets/**"),), ROOT, (STATE,), confined=True)
    assert action == confined.decide(request_).action
    assert "deny" == confined.decide(Request("edit", (f"{ROOT}/secrets/k",))).action  # the user's deny still wins
    assert "ask" == Policy((), ROOT, (STATE,)).decide(Request("edit", (f"{ROOT}/src/a.py",))).action


@pytest.mark.parametrize("line", ["{\U0002c6ca", "echo {\U000c7977}", "ls \U0001f600"])
def test_characters_that_crash_the_bash_grammar_are_not_parsed(line: str) -> None:
    """tree-sitter-bash 0.25.1 segfaults on "{" then some characters beyond U+FFFF (found by the property test
    below): such a line is not classified, so it is asked, and the host never reaches the crash."""
    assert parse_command(line) is None
    assert "allow" != ALLOW_ALL.decide(run(line)).action
