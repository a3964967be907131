"""``tether doctor``: what is installed and what works, without starting anything.

Each check is a Check value (name, status, detail); the CLI prints them as a table.
Statuses: ``ok``, ``missing`` (install something), ``setup`` (installed, needs a key or a
login), ``unavailable`` (not in this version or on this platform).
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tether.agents.presets import PRESETS, Preset
from tether.agents.setup import own_setup
from tether.config import Config
from tether.host.trust import TrustStore
from tether.host.tunnel import TOOLS


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the doctor's report."""

    area: str
    name: str
    status: str
    detail: str


def _has_credentials(preset: Preset, env: Mapping[str, str], home: Path) -> bool:
    if not preset.credentials:
        return True
    for item in preset.credentials:
        if item.startswith(("~", "/")):
            if Path(item.replace("~", str(home), 1)).exists():
                return True
        elif env.get(item):
            return True
    return False


def agent_checks(
    env: Mapping[str, str] | None = None, home: Path | None = None, folder: Path | None = None
) -> list[Check]:
    """Installed and ready, for every preset; the agent's own configuration counts too (agents/setup.py)."""
    env = os.environ if env is None else env
    home = home or Path.home()
    folder = folder or Path.cwd()
    checks = []
    for preset in PRESETS.values():
        if preset.requires and shutil.which(preset.requires, path=env.get("PATH")) is None:
            where = "" if preset.requires == "npx" else f": {preset.description}"
            checks.append(Check("agent", preset.name, "missing", f"needs `{preset.requires}` on PATH{where}"))
            continue
        found = own_setup(preset, env, home, folder)
        if found is None and not _has_credentials(preset, env, home):
            needs = " or ".join(preset.credentials)
            how = f", or run `{preset.login}`" if preset.login else ""
            checks.append(Check("agent", preset.name, "setup", f"needs {needs}{how}"))
        else:
            fetched = " (npx fetches the pinned version on first use)" if preset.requires == "npx" else ""
            checks.append(
                Check("agent", preset.name, "ok", preset.description + fetched + (f"; {found}" if found else ""))
            )
    return checks


def relay_check(url: str | None, timeout: float = 3.0) -> Check:
    """Whether the configured relay answers its health check."""
    if not url:
        return Check("relay", "embedded", "ok", "no relay.url set: `tether` runs a relay on 127.0.0.1 itself")
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/healthz", timeout=timeout) as response:
            health = json.load(response)
    except (OSError, ValueError, urllib.error.URLError) as exc:
        return Check("relay", url, "missing", f"not reachable: {exc}")
    return Check("relay", url, "ok" if health.get("ok") else "missing", f"{health.get('sessions', '?')} sessions")


def tunnel_checks(env: Mapping[str, str] | None = None) -> list[Check]:
    """Which tunnel tools (``--tunnel``: a phone reaches the built-in relay through them) are installed."""
    env = os.environ if env is None else env
    checks = []
    for tool in TOOLS.values():
        path = shutil.which(tool.name, path=env.get("PATH"))
        if path is None:
            checks.append(Check("tunnel", tool.name, "missing", f"not installed; get it from {tool.install}"))
        else:
            checks.append(Check("tunnel", tool.name, "ok", f"{path}: `tether --remote --tunnel {tool.name}`"))
    return checks


def sandbox_check() -> Check:
    """Whether ``--sandbox`` works here, and with what: each mechanism is run once, not only looked for."""
    from tether.host.sandbox_run import choose, mechanism

    chosen, detail = choose()
    names = {"bwrap": "bubblewrap (bwrap)", "sandbox-exec": "sandbox-exec", "landlock": "Landlock + seccomp"}
    if chosen is not None:
        return Check("sandbox", names[chosen], "ok", f"--sandbox works: {detail}")
    status = "missing" if "not installed" in detail else "unavailable"
    return Check("sandbox", names.get(mechanism() or "", "none"), status, f"--sandbox is refused here: {detail}")


def run_checks(folder: Path) -> list[Check]:
    """Every check, for the current folder."""
    trusted = TrustStore().is_trusted(folder)
    trust = Check(
        "trust",
        str(folder),
        "ok" if trusted else "setup",
        "trusted: Remote Control is available here" if trusted else f"run `tether trust {folder}` first",
    )
    return [
        *agent_checks(folder=folder),
        relay_check(Config().get("relay.url")),
        *tunnel_checks(),
        sandbox_check(),
        trust,
    ]
