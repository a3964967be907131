"""How the built-in agent picks its provider, model and limits from flags and the environment."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tether.agents.builtin.config import PLACEHOLDER_KEY, AgentConfig, resolve
from tether.config import ConfigError
from tether.errors import AgentConfigError, ProviderError, TetherError, ToolError, UserError


def test_defaults_with_an_anthropic_key() -> None:
    """An Anthropic key alone gives Anthropic, its default model, 8192 reply tokens, a 200k window."""
    config = resolve([], {"ANTHROPIC_API_KEY": "k"})
    expected = AgentConfig("anthropic", "claude-sonnet-4-5", "k", None, 8192, 200_000)
    assert expected == config
    assert "https://api.anthropic.com" == config.endpoint


def test_a_local_openai_compatible_server_needs_no_key() -> None:
    """OPENAI_BASE_URL alone picks openai with a placeholder key and a smaller default window."""
    config = resolve(["--model", "qwen2.5-coder:7b"], {"OPENAI_BASE_URL": "http://localhost:11434/v1"})
    assert ("openai", "qwen2.5-coder:7b", PLACEHOLDER_KEY, 32_768, None) == (
        config.provider,
        config.model,
        config.api_key,
        config.context_window,
        config.missing_key,
    )


def test_flags_win_over_variables() -> None:
    """--provider and --model beat TETHER_AGENT_PROVIDER and TETHER_AGENT_MODEL."""
    env = {"TETHER_AGENT_PROVIDER": "anthropic", "TETHER_AGENT_MODEL": "env-model", "OPENAI_API_KEY": "k"}
    config = resolve(["--provider", "openai", "--model", "flag-model", "--context-window", "5000"], env)
    assert ("openai", "flag-model", 5000) == (config.provider, config.model, config.context_window)


def test_variables_set_model_and_limits() -> None:
    """The TETHER_AGENT_* variables apply when no flag is given."""
    env = {
        "ANTHROPIC_API_KEY": "k",
        "TETHER_AGENT_MODEL": "claude-haiku-4-5",
        "TETHER_AGENT_MAX_TOKENS": "1000",
        "TETHER_AGENT_CONTEXT_WINDOW": "50000",
    }
    config = resolve([], env)
    assert ("claude-haiku-4-5", 1000, 50_000) == (config.model, config.max_tokens, config.context_window)


@pytest.mark.parametrize(
    ("argv", "variable"),
    [(["--provider", "anthropic"], "ANTHROPIC_API_KEY"), (["--provider", "openai"], "OPENAI_API_KEY")],
)
def test_a_missing_key_names_its_variable(argv: list[str], variable: str) -> None:
    """Without a key the configuration still resolves, carrying the line to show the user."""
    config = resolve(argv, {})
    assert config.missing_key is not None and f"set {variable}" in config.missing_key


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TETHER_AGENT_PROVIDER": "gemini"}, "TETHER_AGENT_PROVIDER must be anthropic or openai, not 'gemini'"),
        ({"TETHER_AGENT_MAX_TOKENS": "lots"}, "TETHER_AGENT_MAX_TOKENS must be a whole number of tokens, not 'lots'"),
        ({"TETHER_AGENT_CONTEXT_WINDOW": "-1"}, "TETHER_AGENT_CONTEXT_WINDOW must be positive, not -1"),
    ],
)
def test_unusable_values_are_named(env: dict[str, str], message: str) -> None:
    """A bad variable is an AgentConfigError naming it and the value."""
    with pytest.raises(AgentConfigError) as caught:
        resolve([], env)
    assert message == str(caught.value)


@pytest.mark.parametrize(("provider", "other"), [("openai", "anthropic"), ("anthropic", "openai")])
def test_only_the_chosen_sdk_is_imported(provider: str, other: str) -> None:
    """Loading one provider never imports the other provider's SDK."""
    code = (
        "import sys; from tether.agents.builtin import agent, providers, config; "
        f"providers.load(config.resolve(['--provider', '{provider}'], {{'{provider.upper()}_API_KEY': 'k'}})); "
        f"print('{provider}' in sys.modules, '{other}' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    assert "True False" == result.stdout.strip()


def test_bad_variable_exits_with_one_line() -> None:
    """The entry point prints one line and exits 2 for an unusable setting, no traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "tether.agents.builtin"],
        env={"TETHER_AGENT_PROVIDER": "gemini", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (2, "tether-agent: TETHER_AGENT_PROVIDER must be anthropic or openai, not 'gemini'\n") == (
        result.returncode,
        result.stderr,
    )


def test_agent_errors_belong_to_the_tether_tree() -> None:
    """The built-in agent's errors are TetherErrors; its config error is a UserError distinct from tether's."""
    assert (True, True, True, False) == (
        issubclass(AgentConfigError, UserError),
        issubclass(ToolError, TetherError),
        issubclass(ProviderError, TetherError),
        AgentConfigError is ConfigError,
    )
