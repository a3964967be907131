"""What an agent's own configuration says about its readiness, for `tether doctor`.

An agent can be ready without any key tether knows of: OpenCode with a provider in its
``opencode.json``, Codex with a model provider in ``~/.codex/config.toml``, Gemini CLI
with an auth type in ``~/.gemini/settings.json`` or a gateway URL, Claude Code with a key
in its own settings. ``own_setup`` reads those files (never writes them) and says what
it found, or None. Unreadable or malformed files count as nothing found.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tether.agents.presets import Preset

JSON = dict[str, Any]


def _json(path: Path) -> JSON | None:
    """A JSON (or JSONC: // and /* */ comments, trailing commas) object file, or None."""
    try:
        text = path.read_text()
    except OSError:
        return None
    text = re.sub(r'("(?:\\.|[^"\\])*")|//[^\n]*|/\*.*?\*/', lambda m: m.group(1) or "", text, flags=re.S)
    text = re.sub(r",(\s*[}\]])", r"\1", text)
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _opencode(env: Mapping[str, str], home: Path, folder: Path) -> str | None:
    if env.get("OPENCODE_CONFIG_CONTENT"):
        return "configuration in OPENCODE_CONFIG_CONTENT"
    paths = [folder / "opencode.json", folder / "opencode.jsonc"]
    if env.get("OPENCODE_CONFIG"):
        paths.insert(0, Path(env["OPENCODE_CONFIG"]))
    config_home = Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "opencode"
    paths += [config_home / "opencode.json", config_home / "opencode.jsonc"]
    for path in paths:
        providers = (_json(path) or {}).get("provider")
        if isinstance(providers, dict) and providers:
            return f"provider {', '.join(sorted(providers))} in {path}"
    return None


def _codex(env: Mapping[str, str], home: Path, folder: Path) -> str | None:
    path = Path(env.get("CODEX_HOME") or home / ".codex") / "config.toml"
    try:
        config = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    name = config.get("model_provider")
    provider = (config.get("model_providers") or {}).get(name) if isinstance(name, str) else None
    if not isinstance(provider, dict):
        return None
    key = provider.get("env_key")
    if isinstance(key, str) and not env.get(key):
        return None  # the provider needs a key that is not set
    return f"model provider {name!r} ({provider.get('base_url', 'its default URL')}) in {path}"


def _gemini(env: Mapping[str, str], home: Path, folder: Path) -> str | None:
    if env.get("GOOGLE_GEMINI_BASE_URL"):
        return f"gateway at {env['GOOGLE_GEMINI_BASE_URL']} (GOOGLE_GEMINI_BASE_URL)"
    if env.get("GOOGLE_GENAI_USE_VERTEXAI") == "true":
        return "Vertex AI (GOOGLE_GENAI_USE_VERTEXAI)"
    path = home / ".gemini" / "settings.json"
    auth = ((_json(path) or {}).get("security") or {}).get("auth") or {}
    chosen = auth.get("selectedType") if isinstance(auth, dict) else None
    return f"auth type {chosen!r} in {path}" if isinstance(chosen, str) and chosen else None


def _claude(env: Mapping[str, str], home: Path, folder: Path) -> str | None:
    path = Path(env.get("CLAUDE_CONFIG_DIR") or home / ".claude") / "settings.json"
    settings = _json(path) or {}
    variables = settings.get("env")
    variables = variables if isinstance(variables, dict) else {}
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX"):
        if variables.get(name):
            return f"{name} in {path}"
    return f"apiKeyHelper in {path}" if settings.get("apiKeyHelper") else None


READERS: dict[str, Callable[[Mapping[str, str], Path, Path], str | None]] = {
    "opencode": _opencode,
    "codex": _codex,
    "gemini": _gemini,
    "claude": _claude,
}


def own_setup(preset: Preset, env: Mapping[str, str], home: Path, folder: Path) -> str | None:
    """What the agent's own configuration provides for a model, or None (see module doc)."""
    reader = READERS.get(preset.name)
    return reader(env, home, folder) if reader else None
