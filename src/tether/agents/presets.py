"""Presets for the ACP agents tether knows by name: one table, one entry per agent.

Adding an agent is one entry in PRESETS. Each entry says how to start the agent's ACP
entry point (with a pinned version where it is fetched by npx), which environment
variables it needs beyond the base set, how a user logs in, and which of its session
modes approve tool calls by themselves: with Remote Control on, those are refused and
the session is put in ``asking_mode`` (DESIGN.md, rule 4).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

CLAUDE_ACP = "@agentclientprotocol/claude-agent-acp@0.101.0"
CODEX_ACP = "@agentclientprotocol/codex-acp@2.6.0"
GEMINI_CLI = "@google/gemini-cli@0.61.0"
OPENCODE = "opencode-ai@1.18.33"

# npx reads its registry, proxy and cache settings from these (and from ~/.npmrc).
NPM_SETTINGS = ("npm_config_", "NPM_CONFIG_")

# Keys every model-backed agent may need: the common providers and local servers.
PROVIDER_KEYS = ("ANTHROPIC_", "OPENAI_", "GEMINI_", "GOOGLE_", "OLLAMA_", "OPENROUTER_", "GROQ_", "MISTRAL_")


@dataclass(frozen=True, slots=True)
class Preset:
    """How to run one named agent."""

    name: str
    argv: tuple[str, ...]
    description: str
    env_prefixes: tuple[str, ...] = ()
    login: str | None = None
    self_approving_modes: frozenset[str] = field(default_factory=frozenset)
    asking_mode: str | None = None
    requires: str | None = None  # the executable that must be on PATH
    # Any one of these makes the agent ready: an environment variable, or a file (~ or /).
    credentials: tuple[str, ...] = ()
    # The mode the agent silently enters when "allow always" is chosen, if it does (Claude
    # Code's "allow all edits during this session" becomes acceptEdits with no ACP update).
    always_enters_mode: str | None = None
    # What the agent's own "always allow" does beyond the one request, when tether can neither
    # confine nor show it (OpenCode's allows every later edit, whatever the file): withheld
    # under Remote Control, with this sentence.
    always_unconfined: str | None = None
    # Variables tether always sets for the agent, after the user's own: how it is made to ask.
    env: tuple[tuple[str, str], ...] = ()
    # Modes in which the agent runs commands itself inside a confinement tether knows (Codex's
    # read-only sandbox): a command it ran there without asking is not "acted without asking".
    confined_modes: frozenset[str] = field(default_factory=frozenset)
    # The agent tells some mode switches only as agent text, "[MODE_UPDATE] <mode id>" (Gemini CLI).
    mode_in_text: bool = False
    # The name a person knows the agent by, for "starting ..." lines.
    title: str = ""
    # The agent's own configuration files (``~`` for the home folder), read by `tether doctor`.
    config_files: tuple[str, ...] = ()


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            "demo",
            (sys.executable, "-m", "tether.agents.demo"),
            "guided tour of tether; no model, no key",
            title="the demo agent",
        ),
        Preset(
            "builtin",
            (sys.executable, "-m", "tether.agents.builtin"),
            "tether's own coding agent on Anthropic or OpenAI-compatible models",
            env_prefixes=("TETHER_AGENT_", *PROVIDER_KEYS),
            credentials=("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL"),
            title="tether's built-in agent",
        ),
        Preset(
            "claude",
            ("npx", "-y", CLAUDE_ACP),
            "Claude Code through its ACP adapter",
            env_prefixes=("ANTHROPIC_", "CLAUDE_", "AWS_", "VERTEX_", "CLOUD_ML_", *NPM_SETTINGS),
            login="claude /login",
            self_approving_modes=frozenset({"bypassPermissions", "acceptEdits", "dontAsk", "auto"}),
            asking_mode="default",
            requires="npx",
            credentials=("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "~/.claude/.credentials.json"),
            always_enters_mode="acceptEdits",
            title="Claude Code",
            config_files=("~/.claude/settings.json",),
        ),
        Preset(
            "codex",
            ("npx", "-y", CODEX_ACP),
            "OpenAI Codex through its ACP adapter",
            env_prefixes=("OPENAI_", "CODEX_", *NPM_SETTINGS),
            login="codex login",
            # workspace-write edits the project without asking (it asks only to leave it).
            self_approving_modes=frozenset({"agent", "agent-full-access", "full-access", "auto", "workspace-write"}),
            asking_mode="read-only",
            requires="npx",
            credentials=("OPENAI_API_KEY", "CODEX_API_KEY", "~/.codex/auth.json"),
            confined_modes=frozenset({"read-only"}),
            title="Codex",
            config_files=("~/.codex/config.toml",),
        ),
        Preset(
            "gemini",
            ("npx", "-y", GEMINI_CLI, "--acp"),
            "Gemini CLI in ACP mode",
            env_prefixes=("GEMINI_", "GOOGLE_", *NPM_SETTINGS),
            login="gemini",
            self_approving_modes=frozenset({"yolo", "autoEdit", "auto_edit"}),
            asking_mode="default",
            requires="npx",
            credentials=("GEMINI_API_KEY", "GOOGLE_API_KEY", "~/.gemini/oauth_creds.json"),
            # Gemini's "Allow for this session" switches it to autoEdit, told only as agent text.
            always_enters_mode="autoEdit",
            mode_in_text=True,
            title="Gemini CLI",
            config_files=("~/.gemini/settings.json",),
        ),
        Preset(
            "opencode",
            ("npx", "-y", OPENCODE, "acp"),
            "OpenCode in ACP mode",
            env_prefixes=("OPENCODE_", *PROVIDER_KEYS, *NPM_SETTINGS),
            login="opencode auth login",
            requires="npx",
            credentials=("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "~/.local/share/opencode/auth.json"),
            # Its default build mode edits without asking; this variable (applied after the
            # project's own config) makes it ask before every edit and command.
            env=(("OPENCODE_PERMISSION", '{"edit":"ask","bash":"ask"}'),),
            always_unconfined="its 'Always allow' lets every later edit or command of that kind run unasked",
            title="OpenCode",
            config_files=("opencode.json", "~/.config/opencode/opencode.json"),
        ),
        Preset(
            "goose",
            ("goose", "acp"),
            "goose in ACP mode (not on npm or PyPI: install goose yourself first)",
            env_prefixes=("GOOSE_", *PROVIDER_KEYS),
            login="goose configure",
            requires="goose",
            credentials=("~/.config/goose/config.yaml",),
            title="goose",
        ),
    )
}
