"""The preset table: one entry per agent, pinned, with a coherent permission story."""

from __future__ import annotations

import re

import pytest

from tether.agents.presets import PRESETS
from tether.host.agent_process import resolve


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_preset_is_coherent(name: str) -> None:
    """The asking mode is never a self-approving one, and npx packages are pinned to a version."""
    preset = PRESETS[name]
    assert preset.name == name and preset.argv and preset.description
    assert preset.asking_mode not in preset.self_approving_modes
    if preset.argv[0] == "npx":
        package = preset.argv[2]
        assert re.fullmatch(r"(@[\w-]+/)?[\w.-]+@\d+\.\d+\.\d+", package), package
        assert "npm_config_" in preset.env_prefixes


def test_the_required_agents_are_there() -> None:
    """Every agent the CLI names has a preset, and resolve() uses it."""
    assert {"demo", "builtin", "claude", "codex", "gemini", "opencode", "goose"} <= set(PRESETS)
    assert PRESETS["claude"] is resolve("claude").preset


def test_a_command_line_is_not_a_preset() -> None:
    """Anything else is an ACP command line with the broad provider allow-list."""
    spec = resolve("claude --acp")
    assert (spec.preset, spec.argv) == (None, ("claude", "--acp"))
