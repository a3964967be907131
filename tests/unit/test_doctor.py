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


def ready_npx(tmp_path: Path) -> dict[str, str]:
    """An environment with an npx on PATH and no key of any provider."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "npx").write_text("#!/bin/sh\n")
    (bin_dir / "npx").chmod(0o755)
    return {"PATH": str(bin_dir)}


def test_each_agent_own_configuration_counts(tmp_path: Path) -> None:
    """OpenCode's opencode.json provider, Codex's config.toml provider, Gemini's settings: ready without a key."""
    env, project = ready_npx(tmp_path), tmp_path / "project"
    project.mkdir()
    (project / "opencode.json").write_text('{\n  // a local server\n  "provider": {"local": {"options": {}}},\n}\n')
    (tmp_path / ".codex").mkdir()
    (tmp_path / ".codex" / "config.toml").write_text(
        'model_provider = "ollama"\n[model_providers.ollama]\nbase_url = "http://127.0.0.1:11434/v1"\n'
    )
    (tmp_path / ".gemini").mkdir()
    (tmp_path / ".gemini" / "settings.json").write_text('{"security": {"auth": {"selectedType": "gemini-api-key"}}}')
    checks = {c.name: c for c in agent_checks(env, tmp_path, project)}
    assert ("ok", "ok", "ok", "setup") == tuple(checks[n].status for n in ("opencode", "codex", "gemini", "claude"))
    assert "provider local" in checks["opencode"].detail and "'ollama'" in checks["codex"].detail


def test_a_codex_provider_whose_key_is_missing_still_needs_setup(tmp_path: Path) -> None:
    """A provider that names an env_key that is not set is not ready."""
    (tmp_path / ".codex").mkdir()
    (tmp_path / ".codex" / "config.toml").write_text(
        'model_provider = "p"\n[model_providers.p]\nbase_url = "http://x/v1"\nenv_key = "P_KEY"\n'
    )
    checks = {c.name: c.status for c in agent_checks(ready_npx(tmp_path), tmp_path, tmp_path)}
    assert "setup" == checks["codex"]


def test_goose_says_it_has_no_package(tmp_path: Path) -> None:
    """goose is on no registry tether can fetch from: doctor says so."""
    [goose] = [c for c in agent_checks({"PATH": str(tmp_path)}, tmp_path, tmp_path) if c.name == "goose"]
    assert "missing" == goose.status and "not on npm or PyPI" in goose.detail
