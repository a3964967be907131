"""User configuration: a TOML file in the config folder, with a closed set of keys.

Keys are dotted (``agent.default`` lives in table ``[agent]``). Every key has a type, a
default and one line of help in KEYS; an unknown key or a value of the wrong type is a
ConfigError naming what is allowed. The file is edited with tomlkit so a user's own
comments and layout survive ``tether config set``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.exceptions import TOMLKitError

from tether.errors import UserError
from tether.paths import config_dir


class ConfigError(UserError):
    """See `tether config list` for the keys and their types."""


@dataclass(frozen=True, slots=True)
class Key:
    """One configuration key."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()  # the only values a str key takes, when not empty


KEYS = {
    key.name: key
    for key in (
        Key("agent.default", str, None, "agent used when --agent is not given (a preset name or an ACP command line)"),
        Key("agent.provider", str, None, "built-in agent: anthropic or openai (OpenAI-compatible servers too)"),
        Key("agent.model", str, None, "built-in agent: the model name, e.g. claude-sonnet-4-5 or llama3.1"),
        Key("relay.url", str, None, "relay used when --relay is not given (default: embedded on 127.0.0.1)"),
        Key("relay.ca", str, None, "PEM file of the private CA a relay's certificate must chain to (--relay-ca)"),
        Key("remote.auto_start", bool, False, "start every interactive session with Remote Control on"),
        Key(
            "remote.tunnel",
            str,
            None,
            "publish the embedded relay for phones through cloudflared or tailscale (when --relay is not given)",
            ("cloudflared", "tailscale"),
        ),
        Key("sandbox.default", bool, False, "run tools in the sandbox unless --no-sandbox is given"),
        Key("approvals.timeout_seconds", int, 600, "an unanswered approval is denied after this long"),
    )
}


def config_path() -> Path:
    """The TOML file: ``config.toml`` in the config folder."""
    return config_dir() / "config.toml"


def _parse(key: Key, text: str) -> Any:
    if key.type is bool:
        lowered = text.strip().lower()
        if lowered in ("true", "yes", "on", "1"):
            return True
        if lowered in ("false", "no", "off", "0"):
            return False
        raise ConfigError(f"{key.name} takes true or false, not {text!r}")
    if key.type is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{key.name} takes a whole number, not {text!r}") from None
    _check_choice(key, text)
    return text


def _check_choice(key: Key, value: Any) -> None:
    if key.choices and value not in key.choices:
        allowed = ", ".join(key.choices[:-1]) + f" or {key.choices[-1]}"
        raise ConfigError(f"{key.name} takes {allowed}, not {value!r}")


class Config:
    """Read and change the config file (see module doc)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_path()

    def _document(self) -> tomlkit.TOMLDocument:
        try:
            return tomlkit.parse(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return tomlkit.document()
        except TOMLKitError as exc:
            raise ConfigError(f"{self.path} is not valid TOML: {exc}") from None

    @staticmethod
    def key(name: str) -> Key:
        """The Key called ``name``; ConfigError listing the known keys otherwise."""
        if name not in KEYS:
            raise ConfigError(f"unknown config key {name!r}; known keys: {', '.join(KEYS)}")
        return KEYS[name]

    def get(self, name: str) -> Any:
        """The value of ``name``: from the file if set there, else its default."""
        key = self.key(name)
        table, _, leaf = name.partition(".")
        value = self._document().get(table, {}).get(leaf, key.default)
        if value is not None and not isinstance(value, key.type):
            raise ConfigError(f"{name} in {self.path} should be a {key.type.__name__}")
        value = value.unwrap() if hasattr(value, "unwrap") else value
        if value is not None:
            _check_choice(key, value)
        return value

    def set(self, name: str, text: str) -> Any:
        """Parse ``text`` for ``name`` and write it to the file; returns the value."""
        key = self.key(name)
        value = _parse(key, text)
        document = self._document()
        table, _, leaf = name.partition(".")
        if table not in document:
            document[table] = tomlkit.table()
        document[table][leaf] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(tomlkit.dumps(document), encoding="utf-8")
        os.replace(temporary, self.path)
        return value

    def items(self) -> list[tuple[Key, Any]]:
        """Every key with its current value."""
        return [(key, self.get(key.name)) for key in KEYS.values()]
