"""Which model API and model the built-in agent uses, from its flags and environment.

Command line::

    tether-agent [--provider anthropic|openai] [--model NAME] [--max-tokens N] [--context-window N]
    python -m tether.agents.builtin ...            (the same)

Each setting is taken from its flag, else its ``TETHER_AGENT_*`` variable, else the default:

- ``--provider`` / TETHER_AGENT_PROVIDER: ``anthropic`` if ANTHROPIC_API_KEY is set, else
  ``openai`` if OPENAI_API_KEY or OPENAI_BASE_URL is set, else ``anthropic`` (which then
  says which key to set).
- ``--model`` / TETHER_AGENT_MODEL: ``claude-sonnet-4-5`` for anthropic, ``gpt-4.1`` for
  openai. A local server (Ollama, vLLM, LM Studio, llama.cpp) needs the name it serves,
  e.g. ``qwen2.5-coder:14b``.
- ``--max-tokens`` / TETHER_AGENT_MAX_TOKENS: 8192 tokens per model reply.
- ``--context-window`` / TETHER_AGENT_CONTEXT_WINDOW: 200000 for anthropic, 128000 for
  api.openai.com, 32768 for any other OpenAI-compatible server (set it to what the server
  really gives, e.g. Ollama's ``num_ctx``). The conversation is trimmed to fit it.

Credentials and endpoints are the SDKs' own variables:

- anthropic: ``ANTHROPIC_API_KEY`` (required), ``ANTHROPIC_BASE_URL`` (optional).
- openai: ``OPENAI_API_KEY``, ``OPENAI_BASE_URL`` (e.g. ``http://localhost:11434/v1`` for Ollama).
  The key is required for api.openai.com; with a base URL set and no key, a placeholder is
  sent, since local servers accept any.

A missing key does not stop the agent from starting: it still speaks ACP, and answers
each prompt with the one line saying which variable to set (``AgentConfig.missing_key``).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from tether.errors import AgentConfigError

ProviderName = Literal["anthropic", "openai"]
PROVIDERS: tuple[ProviderName, ...] = ("anthropic", "openai")
DEFAULT_MODELS: dict[ProviderName, str] = {"anthropic": "claude-sonnet-4-5", "openai": "gpt-4.1"}
DEFAULT_MAX_TOKENS = 8192
ANTHROPIC_CONTEXT = 200_000
OPENAI_CONTEXT = 128_000
LOCAL_CONTEXT = 32_768
# Local servers ignore the key, but the openai SDK refuses to build a client without one.
PLACEHOLDER_KEY = "not-needed"


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """Everything the agent needs to reach its model (see module doc)."""

    provider: ProviderName
    model: str
    api_key: str | None
    base_url: str | None
    max_tokens: int
    context_window: int
    missing_key: str | None = None

    @property
    def endpoint(self) -> str:
        """The API address for messages: the base URL, or the provider's public one."""
        if self.base_url:
            return self.base_url
        return "https://api.anthropic.com" if self.provider == "anthropic" else "https://api.openai.com/v1"


def parser() -> argparse.ArgumentParser:
    """The command line of ``tether-agent``."""
    result = argparse.ArgumentParser(
        prog="tether-agent",
        description="tether's built-in coding agent: an ACP agent on stdio, for tether, Zed or any ACP client.",
        epilog="Environment: TETHER_AGENT_PROVIDER, TETHER_AGENT_MODEL, TETHER_AGENT_MAX_TOKENS, "
        "TETHER_AGENT_CONTEXT_WINDOW, ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL, OPENAI_API_KEY, OPENAI_BASE_URL.",
    )
    result.add_argument("--provider", choices=PROVIDERS, help="model API (default: from the keys in the environment)")
    result.add_argument("--model", help="model name (default: claude-sonnet-4-5 / gpt-4.1)")
    result.add_argument("--max-tokens", type=int, help=f"tokens per model reply (default {DEFAULT_MAX_TOKENS})")
    result.add_argument("--context-window", type=int, help="the model's context size in tokens")
    return result


def _positive(value: str | int | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        raise AgentConfigError(f"{name} must be a whole number of tokens, not {value!r}") from None
    if number <= 0:
        raise AgentConfigError(f"{name} must be positive, not {number}")
    return number


def _provider(flag: str | None, env: Mapping[str, str]) -> ProviderName:
    chosen = flag or env.get("TETHER_AGENT_PROVIDER", "").strip().lower()
    if chosen:
        if chosen not in PROVIDERS:
            raise AgentConfigError(f"TETHER_AGENT_PROVIDER must be anthropic or openai, not {chosen!r}")
        return "anthropic" if chosen == "anthropic" else "openai"
    if env.get("ANTHROPIC_API_KEY"):
        return "anthropic"
    if env.get("OPENAI_API_KEY") or env.get("OPENAI_BASE_URL"):
        return "openai"
    return "anthropic"


def resolve(argv: Sequence[str], env: Mapping[str, str]) -> AgentConfig:
    """The configuration for this command line and environment; AgentConfigError for unusable values.

    ``argparse`` itself exits with a usage message for unknown flags or a bad ``--provider``.
    """
    args = parser().parse_args(list(argv))
    provider = _provider(args.provider, env)
    model = args.model or env.get("TETHER_AGENT_MODEL", "").strip() or DEFAULT_MODELS[provider]
    max_tokens = _positive(args.max_tokens, "--max-tokens") or _positive(
        env.get("TETHER_AGENT_MAX_TOKENS"), "TETHER_AGENT_MAX_TOKENS"
    )
    window = _positive(args.context_window, "--context-window") or _positive(
        env.get("TETHER_AGENT_CONTEXT_WINDOW"), "TETHER_AGENT_CONTEXT_WINDOW"
    )
    missing = None
    if provider == "anthropic":
        api_key = env.get("ANTHROPIC_API_KEY") or None
        base_url = env.get("ANTHROPIC_BASE_URL") or None
        default_window = ANTHROPIC_CONTEXT
        if api_key is None:
            missing = "No Anthropic API key: set ANTHROPIC_API_KEY (or use --provider openai with OPENAI_API_KEY)."
    else:
        api_key = env.get("OPENAI_API_KEY") or None
        base_url = env.get("OPENAI_BASE_URL") or None
        default_window = LOCAL_CONTEXT if base_url else OPENAI_CONTEXT
        if api_key is None and base_url:
            api_key = PLACEHOLDER_KEY
        elif api_key is None:
            missing = (
                "No OpenAI API key: set OPENAI_API_KEY, or OPENAI_BASE_URL for a local server "
                "(e.g. http://localhost:11434/v1 for Ollama)."
            )
    return AgentConfig(
        provider=provider,
        model=model,
        api_key=api_key,
        base_url=base_url,
        max_tokens=max_tokens or DEFAULT_MAX_TOKENS,
        context_window=window or default_window,
        missing_key=missing,
    )
