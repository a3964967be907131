"""The permission rules in config.toml, applied to a real agent's commands through `tether` (scripted agent).

``sneakrun`` sends a command with no permission request: without rules the host would ask
itself; these tests show a deny rule refusing it, an allow rule running it without asking,
a project's config tightening but never loosening, and tether's own files never touched.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import SCRIPTED_AGENT, TETHER, UNIT, Lines, require, stop
from tether.host import sandbox_run


def session(project: Path, env: dict[str, str], prompts: list[str], until: list[str], *flags: str) -> str:
    """Run `tether` with the scripted agent, send each prompt once the previous marker showed; all output."""
    process = subprocess.Popen([*TETHER, *flags, "--agent", SCRIPTED_AGENT], cwd=project, env=env | {"COLUMNS": "300"},
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    lines = Lines(process.stdout)
    try:
        lines.until("Type a prompt", 30 * UNIT)
        for prompt, marker in zip(prompts, until, strict=True):
            process.stdin.write(prompt.encode() + b"\n")
            process.stdin.flush()
            lines.until(marker, 30 * UNIT)
        return "".join(lines.seen)
    finally:
        stop(process)


def configure(env: dict[str, str], text: str) -> None:
    config = Path(env["TETHER_CONFIG_DIR"])
    config.mkdir(parents=True, exist_ok=True)
    (config / "config.toml").write_text(text)


def test_deny_and_allow_rules(project: Path, tether_env: dict[str, str]) -> None:
    """A deny rule refuses `rm` (even inside a longer line); an allow rule runs `echo` with no approval asked;
    tether's own trust list is never touched, even by an allowed program."""
    configure(tether_env, '[permissions]\nallow = ["execute: echo", "execute: cp"]\ndeny = ["execute: rm"]\n')
    (project / "keep.txt").write_text("x")
    trust = Path(tether_env["TETHER_STATE_DIR"]) / "trust.json"
    before = trust.read_text()
    out = session(project, tether_env, ["sneakrun echo ruled-ok", "sneakrun ls && rm keep.txt",
                                        f"sneakrun cp /dev/null {trust}"], ["exit 0", "failed:", "never"])  # fmt: skip
    assert before == trust.read_text()
    assert "ruled-ok" in out
    assert "→ approved once (rule)" in out, out  # decided by the rule; nobody typed an answer
    assert "Refused by tether: deny rule 'execute: rm'" in out
    assert (project / "keep.txt").exists()


def test_project_config_only_tightens(project: Path, tether_env: dict[str, str]) -> None:
    """The project's allow rules are ignored with a warning; its deny rules apply over the user's allow."""
    configure(tether_env, '[permissions]\nallow = ["execute: touch"]\n')
    (project / ".tether").mkdir()
    (project / ".tether" / "config.toml").write_text(
        '[permissions]\nallow = ["execute"]\ndeny = ["execute: touch made.txt"]\n'
    )
    out = session(project, tether_env, ["sneakrun touch made.txt", "sneakrun touch other.txt"], ["failed:", "exit 0"])
    assert "its allow rules are ignored: a project's config may only add ask or deny rules" in out
    assert "Refused by tether: deny rule 'execute: touch made.txt'" in out
    assert not (project / "made.txt").exists()
    assert (project / "other.txt").exists()  # the user's own allow rule still applies


def test_sandbox_auto_approve(project: Path, tether_env: dict[str, str]) -> None:
    """--sandbox with sandbox.auto_approve: an ordinary command runs confined with no tap; a delete still asks."""
    ok, detail = sandbox_run.availability()
    require(ok, f"the sandbox does not work on this machine: {detail}")
    configure(tether_env, "[sandbox]\nauto_approve = true\n")
    (project / "keep.txt").write_text("x")
    out = session(project, tether_env, ["sneakrun touch made.txt", "sneakrun rm keep.txt"],
                  ["exit 0", "Approve? (asked by tether) Run sh -c 'rm keep.txt'"], "--sandbox")  # fmt: skip
    assert "→ approved once (rule)" in out, out
    assert (project / "made.txt").exists()
    assert (project / "keep.txt").exists()  # the delete waits for a person
    assert "— RISKY: a delete (rm)" in out, out  # and says on every screen what makes it risky


def test_project_config_unread_in_an_untrusted_folder(tmp_path: Path, tether_env: dict[str, str]) -> None:
    """In a folder not trusted, its .tether/config.toml is not read: its deny rule does not apply, nothing is said."""
    folder = tmp_path / "cloned"
    (folder / ".tether").mkdir(parents=True)
    (folder / ".tether" / "config.toml").write_text('[permissions]\nallow = ["execute"]\ndeny = ["execute: echo"]\n')
    out = session(folder, tether_env, ["sneakrun echo hi"], ["Approve? (asked by tether)"])
    assert "Refused by tether" not in out and "allow rules are ignored" not in out, out
