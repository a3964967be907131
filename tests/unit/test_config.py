"""The config file: known keys only, typed values, the user's own comments kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether.config import Config, ConfigError


def test_set_get_and_defaults(tmp_path: Path) -> None:
    """Values round-trip with their types; unset keys give their defaults."""
    config = Config(tmp_path / "config.toml")
    assert (None, False, 600) == (
        config.get("agent.default"),
        config.get("remote.auto_start"),
        config.get("approvals.timeout_seconds"),
    )
    config.set("remote.auto_start", "yes")
    config.set("approvals.timeout_seconds", "30")
    config.set("agent.default", "claude")
    assert (True, 30, "claude") == (
        config.get("remote.auto_start"),
        config.get("approvals.timeout_seconds"),
        config.get("agent.default"),
    )


def test_comments_survive(tmp_path: Path) -> None:
    """A user's comment in config.toml is still there after `tether config set`."""
    path = tmp_path / "config.toml"
    path.write_text("# my relay\n[relay]\nurl = 'https://r.example'\n")
    Config(path).set("agent.default", "codex")
    assert "# my relay" in path.read_text() and "codex" in path.read_text()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("nope.key", "1", "unknown config key"), ("remote.auto_start", "maybe", "true or false"),
     ("approvals.timeout_seconds", "soon", "whole number")],
)  # fmt: skip
def test_bad_keys_and_values_are_clear_errors(tmp_path: Path, key: str, value: str, message: str) -> None:
    """Unknown keys and wrongly typed values are refused with a message saying what fits."""
    with pytest.raises(ConfigError, match=message):
        Config(tmp_path / "config.toml").set(key, value)


def test_broken_file_is_a_clear_error(tmp_path: Path) -> None:
    """A config file that is not TOML is named in the error."""
    path = tmp_path / "config.toml"
    path.write_text("[[[")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Config(path).get("agent.default")


def test_remote_tunnel_takes_only_the_two_tools(tmp_path: Path) -> None:
    """remote.tunnel is cloudflared or tailscale; another value is refused on set and when read from the file."""
    path = tmp_path / "config.toml"
    config = Config(path)
    assert None is config.get("remote.tunnel")
    assert "tailscale" == config.set("remote.tunnel", "tailscale")
    assert "tailscale" == config.get("remote.tunnel")
    with pytest.raises(ConfigError, match="cloudflared or tailscale"):
        config.set("remote.tunnel", "ngrok")
    path.write_text("[remote]\ntunnel = 'ngrok'\n")
    with pytest.raises(ConfigError, match="cloudflared or tailscale"):
        config.get("remote.tunnel")
