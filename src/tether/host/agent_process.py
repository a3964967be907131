"""Starting the agent: which command, with which environment, logging where.

The agent gets a deliberate environment: what a program needs to run (PATH, HOME,
locale, temp dir), the provider keys and proxies listed here, and nothing else. The
ACP SDK's default environment drops API keys, and its default stderr pipe can hang an
agent that logs a lot, so tether spawns the process itself and sends stderr to a file.
"""

from __future__ import annotations

import asyncio
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether.agents.presets import PRESETS, Preset
from tether.errors import AgentNotFound

if TYPE_CHECKING:
    from tether.host.sandbox_run import Sandbox

# The ACP JSON-RPC stream can carry whole files; asyncio's 64 KiB line limit is too small.
STDIO_LIMIT = 50 * 1024 * 1024

BASE_VARIABLES = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LANGUAGE", "TZ", "TMPDIR",
    "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE",
)  # fmt: skip
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
# An agent given as a bare command line may use any common provider; a preset names its own.
ANY_PROVIDER = ("ANTHROPIC_", "CLAUDE_", "OPENAI_", "CODEX_", "GEMINI_", "GOOGLE_", "OPENCODE_", "GOOSE_", "OLLAMA_")

DEMO = "demo"


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """A resolved ``--agent`` value: what to run and which variables it may see."""

    name: str
    argv: tuple[str, ...]
    env_prefixes: tuple[str, ...] = ANY_PROVIDER
    preset: Preset | None = None
    settings: tuple[tuple[str, str], ...] = ()  # variables tether sets for the agent (from its config)
    sandbox: Sandbox | None = None  # --sandbox: the agent and its commands run confined (host/sandbox_run.py)


def resolve(agent: str) -> AgentSpec:
    """A preset name (demo, builtin, claude, ...) or any command line of an ACP agent."""
    agent = agent.strip()
    if agent in PRESETS:
        preset = PRESETS[agent]
        return AgentSpec(name=preset.name, argv=preset.argv, env_prefixes=preset.env_prefixes, preset=preset)
    try:
        argv = tuple(shlex.split(agent))
    except ValueError as exc:
        raise AgentNotFound(f"cannot parse the agent command {agent!r}: {exc}") from None
    if not argv:
        raise AgentNotFound("the agent command is empty")
    return AgentSpec(name=Path(argv[0]).name, argv=argv)


PROVIDER_SIGNALS = ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL")


def default_agent(configured: str | None, source: Mapping[str, str] | None = None) -> str:
    """The configured agent; else the built-in one if a provider is set up; else the demo."""
    if configured:
        return configured
    source = os.environ if source is None else source
    return "builtin" if any(source.get(name) for name in PROVIDER_SIGNALS) else DEMO


def agent_environment(
    prefixes: tuple[str, ...] = ANY_PROVIDER, source: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The allow-listed environment the agent runs with (see module doc)."""
    source = os.environ if source is None else source
    keep: dict[str, str] = {}
    for name, value in source.items():
        if value.startswith("()"):  # exported shell functions are not configuration
            continue
        if (
            name in BASE_VARIABLES
            or name.startswith("LC_")
            or name.upper() in PROXY_VARIABLES
            or (prefixes and name.startswith(prefixes))
        ):
            keep[name] = value
    return keep


async def spawn(spec: AgentSpec, cwd: Path, log_path: Path) -> asyncio.subprocess.Process:
    """Start the agent with piped stdin/stdout and stderr appended to ``log_path`` (mode 0600)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # Agents log prompts, file contents and sometimes credentials: owner only, also for an
    # older log created before this rule (open's mode applies to new files only).
    descriptor = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    with os.fdopen(descriptor, "ab") as log:
        os.fchmod(descriptor, 0o600)
        env = agent_environment(spec.env_prefixes) | dict(spec.settings)
        pipes: dict[str, Any] = {"stdin": asyncio.subprocess.PIPE, "stdout": asyncio.subprocess.PIPE, "stderr": log}
        try:
            if spec.sandbox is not None:
                return await spec.sandbox.spawn(spec.argv, env, limit=STDIO_LIMIT, start_new_session=True, **pipes)
            return await asyncio.create_subprocess_exec(
                *spec.argv, cwd=cwd, env=env, limit=STDIO_LIMIT, start_new_session=True, **pipes
            )
        except (FileNotFoundError, PermissionError) as exc:
            raise AgentNotFound(f"cannot start agent {' '.join(spec.argv)!r}: {exc.strerror}") from None


LOG_TAIL_LINES = 8
LOG_TAIL_BYTES = 4096


def log_tail(log_path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last ``lines`` non-empty lines of an agent's log, made safe to print (an agent wrote them)."""
    from tether.host.sanitize import bounded, visible

    try:
        with log_path.open("rb") as log:
            log.seek(max(0, log_path.stat().st_size - LOG_TAIL_BYTES))
            data = log.read(LOG_TAIL_BYTES)
    except OSError:
        return []
    text = data.decode("utf-8", errors="replace")
    if len(data) == LOG_TAIL_BYTES:
        text = text.partition("\n")[2]  # the first line read is probably cut
    return [bounded(visible(line)) for line in text.splitlines() if line.strip()][-lines:]
