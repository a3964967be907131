"""The permission rules in config.toml, applied to a real agent's commands through `tether` (scripted agent).

``sneakrun`` sends a command with no permission request: without rules the host would ask
itself; these tests show a deny rule refusing it, an allow rule running it without asking,
a project's config tightening but never loosening, and tether's own files never touched.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import SCRIPTED_AGENT, TETHER, UNIT, Lines, stop


def session(project: Path, env: dict[str, str], prompts: list[str], until: list[str]) -> str:
    """Run `tether` with the scripted agent, send each prompt once the previous marker showed; all output."""
    process = subprocess.Popen([*TETHER, "--agent", SCRIPTED_AGENT], cwd=project, env=env | {"COLUMNS": "300"},
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
    """A deny rule refuses `rm` (even inside a longer line); an allow rule runs `echo` with no approval asked."""
    configure(tether_env, '[permissions]\nallow = ["execute: echo"]\ndeny = ["execute: rm"]\n')
    (project / "keep.txt").write_text("x")
    out = session(project, tether_env, ["sneakrun echo ruled-ok", "sneakrun ls && rm keep.txt"],
                  ["exit 0", "failed:"])  # fmt: skip
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


def test_tethers_own_files_are_never_touched(project: Path, tether_env: dict[str, str]) -> None:
    """Even with every command allowed, a command naming tether's trust list is refused."""
    configure(tether_env, '[permissions]\nallow = ["execute", "*"]\n')
    trust = Path(tether_env["TETHER_STATE_DIR"]) / "trust.json"
    before = trust.read_text()
    out = session(project, tether_env, [f"sneakrun cp /dev/null {trust}"], ["failed:"])
    assert "never" in out and "Refused by tether" in out, out
    assert before == trust.read_text()
