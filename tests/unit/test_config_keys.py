"""Every config key is checked on `set` and on read: type, choices and meaning; `unset` and the sources in `list`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tether.cli.main import app
from tether.config import KEYS, Config, ConfigError

# For every key: a value that fits and one that does not, with the words the error must use.
CASES = {
    "agent.default": ("claude", "'unclosed", "a preset"),
    "agent.provider": ("openai", "gpt", "anthropic or openai"),
    "agent.model": ("llama3.1", "  ", "non-empty"),
    "agent.mode": ("plan", "  ", "non-empty"),
    "relay.url": ("https://relay.example.com", "not-a-url", "relay address"),
    "relay.ca": (__file__, "/nonexistent/ca.pem", "not a file"),
    "remote.auto_start": ("true", "maybe", "true or false"),
    "remote.tunnel": ("tailscale", "ngrok", "cloudflared or tailscale"),
    "remote.takeover": ("paired", "always", "ask or paired"),
    "remote.outage_window": ("600", "0", "from 1 to 86400"),
    "sandbox.default": ("off", "sometimes", "true or false"),
    "sandbox.auto_approve": ("yes", "perhaps", "true or false"),
    "sandbox.mechanism": ("landlock", "firejail", "auto, bwrap or landlock"),
    "approvals.timeout_seconds": ("30", "0", "from 1 to 86400"),
}


def test_every_key_has_a_case() -> None:
    """A new key cannot be added without saying what fits it (this table)."""
    assert sorted(KEYS) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_key_checks_its_value(tmp_path: Path, name: str) -> None:
    """The good value is stored; the bad one is refused on set, and named with the file when found there."""
    good, bad, words = CASES[name]
    path = tmp_path / "config.toml"
    config = Config(path)
    config.set(name, good)
    assert config.get(name) is not None
    with pytest.raises(ConfigError, match=words):
        config.set(name, bad)
    table, _, leaf = name.partition(".")
    stored = bad if KEYS[name].type is int else json.dumps(bad)  # a bool key gets a string: wrong type
    path.write_text(f"[{table}]\n{leaf} = {stored}\n")
    if not KEYS[name].check_file:
        assert bad == config.get(name)  # "this file exists" is checked on set only
        return
    with pytest.raises(ConfigError, match=f"{name} .*in {path}"):
        config.get(name)


def test_relay_url_with_a_bad_port(tmp_path: Path) -> None:
    """A URL whose port is not a number is refused when set."""
    with pytest.raises(ConfigError, match="bad port"):
        Config(tmp_path / "c.toml").set("relay.url", "https://relay.example.com:http")


def test_unset_restores_the_default(tmp_path: Path) -> None:
    """`unset` removes the key (and an emptied table); the default applies again; a second unset says False."""
    path = tmp_path / "config.toml"
    path.write_text("# mine\n[agent]\nprovider = 'openai'\n")
    config = Config(path)
    assert config.unset("agent.provider") is True
    assert None is config.get("agent.provider")
    assert "[agent]" not in path.read_text() and "# mine" in path.read_text()
    assert config.unset("agent.provider") is False


def test_sources(tmp_path: Path) -> None:
    """Each value says where it comes from: an environment variable, the file, or the default."""
    config = Config(tmp_path / "config.toml")
    config.set("agent.provider", "openai")
    rows = {key.name: (value, source) for key, value, source in config.sources({"TETHER_AGENT_MODEL": "m1"})}
    assert ("openai", str(tmp_path / "config.toml")) == rows["agent.provider"]
    assert ("m1", "environment TETHER_AGENT_MODEL") == rows["agent.model"]
    assert (600, "default") == rows["approvals.timeout_seconds"]


def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *args: str) -> tuple[int, str]:
    monkeypatch.setenv("TETHER_CONFIG_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["config", *args])
    return result.exit_code, result.output


def test_cli_set_refuses_a_wrong_value(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`tether config set agent.provider gpt` exits 2 naming the choices, and writes nothing."""
    code, output = cli(monkeypatch, tmp_path, "set", "agent.provider", "gpt")
    assert 2 == code
    assert "agent.provider takes anthropic or openai, not 'gpt'" in output
    assert not (tmp_path / "config.toml").exists()
    code, output = cli(monkeypatch, tmp_path, "set", "relay.url", "not-a-url")
    assert 2 == code and "relay.url takes a relay address" in output


def test_cli_unset_and_list(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`config set` shows the parsed value, `config list` the source, `config unset` the default it restored."""
    monkeypatch.delenv("TETHER_AGENT_PROVIDER", raising=False)
    assert (0, "remote.auto_start = true\n") == cli(monkeypatch, tmp_path, "set", "remote.auto_start", "yes")
    code, output = cli(monkeypatch, tmp_path, "list")
    assert 0 == code
    line = next(line for line in output.splitlines() if line.startswith("remote.auto_start"))
    assert line.startswith(f"remote.auto_start = true    [{tmp_path / 'config.toml'}]")
    assert (0, "remote.auto_start restored to its default: false\n") == cli(
        monkeypatch, tmp_path, "unset", "remote.auto_start"
    )
    code, output = cli(monkeypatch, tmp_path, "list")
    assert 0 == code and "remote.auto_start = false    [default]" in output


def test_cli_list_shows_permission_rules(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`config list` ends with the permission rules, deny first; a rule that cannot be read is a clear error."""
    (tmp_path / "config.toml").write_text('[permissions]\nallow = ["execute: git status"]\ndeny = ["edit: .env"]\n')
    code, output = cli(monkeypatch, tmp_path, "list")
    assert 0 == code
    assert [
        f'permissions.deny = ["edit: .env"]    [{tmp_path / "config.toml"}]',
        f'permissions.allow = ["execute: git status"]    [{tmp_path / "config.toml"}]',
    ] == output.splitlines()[-2:]
    (tmp_path / "config.toml").write_text('[permissions]\nallow = ["bash: ls"]\n')
    code, output = cli(monkeypatch, tmp_path, "list")
    assert 2 == code and "starts with 'bash'; kinds are" in output
