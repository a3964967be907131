"""`tether doctor`'s agent checks: installed, needs setup, or ready."""

from __future__ import annotations

from pathlib import Path

from tether.host.doctor import agent_checks, relay_check, tunnel_checks


def statuses(env: dict[str, str], home: Path) -> dict[str, str]:
    return {check.name: check.status for check in agent_checks(env, home)}


def test_missing_executable_and_missing_key(tmp_path: Path) -> None:
    """No npx on PATH: npx agents are missing; the demo is always ready."""
    result = statuses({"PATH": str(tmp_path)}, tmp_path)
    assert ("ok", "missing", "missing", "setup") == (
        result["demo"],
        result["claude"],
        result["goose"],
        result["builtin"],
    )


def test_a_key_or_a_login_file_makes_an_agent_ready(tmp_path: Path) -> None:
    """An API key in the environment, or the agent's own login file, counts as ready."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npx = bin_dir / "npx"
    npx.write_text("#!/bin/sh\n")
    npx.chmod(0o755)
    (tmp_path / ".codex").mkdir()
    (tmp_path / ".codex" / "auth.json").write_text("{}")
    result = statuses({"PATH": str(bin_dir), "ANTHROPIC_API_KEY": "k"}, tmp_path)
    assert ("ok", "ok", "ok", "setup") == (result["claude"], result["codex"], result["builtin"], result["gemini"])


def test_unreachable_relay_is_reported() -> None:
    """A configured relay that does not answer is reported, not raised."""
    check = relay_check("http://127.0.0.1:9", timeout=1.0)
    assert "missing" == check.status and "not reachable" in check.detail


def test_tunnel_tools_installed_or_missing(tmp_path: Path) -> None:
    """Each tunnel tool is ok when on PATH (with the flag that uses it), else missing with where to get it."""
    (tmp_path / "cloudflared").write_text("#!/bin/sh\n")
    (tmp_path / "cloudflared").chmod(0o755)
    checks = {check.name: check for check in tunnel_checks({"PATH": str(tmp_path)})}
    assert ("ok", "missing") == (checks["cloudflared"].status, checks["tailscale"].status)
    assert "--tunnel cloudflared" in checks["cloudflared"].detail
    assert "tailscale.com/download" in checks["tailscale"].detail
