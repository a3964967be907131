"""Model API adapters, chosen by name and imported lazily.

Each adapter module imports its SDK at the top, so importing only the chosen one means
the other SDK is never loaded (and need not be installed): ``anthropic`` ->
``providers/anthropic.py`` (AnthropicProvider), ``openai`` -> ``providers/openai.py``
(OpenAIProvider). Both translate their SDK's stream into the events of ``model.py``.
"""

from __future__ import annotations

import contextlib
import importlib

from tether.agents.builtin.config import AgentConfig
from tether.agents.builtin.model import Provider, ProviderError

ADAPTERS = {
    "anthropic": ("tether.agents.builtin.providers.anthropic", "AnthropicProvider", "anthropic"),
    "openai": ("tether.agents.builtin.providers.openai", "OpenAIProvider", "openai"),
}


def preload(config: AgentConfig) -> None:
    """Import the adapter (and its SDK, which takes a second) ahead of the first prompt; errors wait for ``load``."""
    with contextlib.suppress(ImportError):
        importlib.import_module(ADAPTERS[config.provider][0])


def load(config: AgentConfig) -> Provider:
    """The adapter for ``config.provider``; ProviderError if its SDK is not installed."""
    module_name, class_name, package = ADAPTERS[config.provider]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != package:
            raise
        raise ProviderError(
            f"The {package!r} Python package is missing: install it with `pip install {package}`."
        ) from None
    provider: Provider = getattr(module, class_name)(config)
    return provider
