"""Where tether keeps its files: config (TOML) and state (trust list, logs).

``TETHER_CONFIG_DIR`` and ``TETHER_STATE_DIR`` override the platform folders; tests
use them so they never touch the user's real files.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP = "tether"


def config_dir() -> Path:
    """The config folder (TETHER_CONFIG_DIR or the platform's user config dir)."""
    override = os.environ.get("TETHER_CONFIG_DIR")
    return Path(override) if override else platformdirs.user_config_path(APP)


def state_dir() -> Path:
    """The state folder (TETHER_STATE_DIR or the platform's user state dir)."""
    override = os.environ.get("TETHER_STATE_DIR")
    return Path(override) if override else platformdirs.user_state_path(APP)


def logs_dir() -> Path:
    """Agent stderr logs and session logs."""
    return state_dir() / "logs"
