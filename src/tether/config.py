"""User configuration: a TOML file in the config folder, with a closed set of keys.

Keys are dotted (``agent.default`` lives in table ``[agent]``). Every key has a type, a
default and one line of help in KEYS; an unknown key or a value of the wrong type is a
ConfigError naming what is allowed. The file is edited with tomlkit so a user's own
comments and layout survive ``tether config set``.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tomlkit
from tomlkit.exceptions import TOMLKitError

from tether.errors import UserError
from tether.paths import config_dir


class ConfigError(UserError):
    """See `tether config list` for the keys and their types."""


@dataclass(frozen=True, slots=True)
class Key:
    """One configuration key.

    ``check`` looks at a value of the right type and returns what is wrong with it, or
    None; it runs on ``set`` and again when the file is read, so a hand-edited value
    that does not fit is named with the key and the file, never met later as a puzzle.
    ``env`` names a variable that overrides the file when set (``config list`` shows it).
    A check that a file exists runs on ``set`` only: the file may come and go, and its
    user (host/tls.py) says clearly when it is missing.
    """

    name: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()  # the only values a str key takes, when not empty
    check: Callable[[Any], str | None] | None = None
    env: str | None = None
    check_file: bool = True  # run ``check`` on a value read from the file too (not for "this file exists")


def _agent_command(value: str) -> str | None:
    from tether.agents.presets import PRESETS

    if value in PRESETS:
        return None
    try:
        argv = shlex.split(value)
    except ValueError as exc:
        return f"takes a preset ({', '.join(PRESETS)}) or an ACP agent's command line, not {value!r} ({exc})"
    if not argv:
        return f"takes a preset ({', '.join(PRESETS)}) or an ACP agent's command line, not an empty value"
    return None


def _relay_url(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http", "wss", "ws") or not parts.hostname:
        return f"takes a relay address such as https://relay.example.com, not {value!r}"
    try:
        parts.port  # noqa: B018 (a bad port raises here)
    except ValueError:
        return f"has a bad port in {value!r}"
    return None


def _pem_file(value: str) -> str | None:
    path = Path(value).expanduser()
    if not path.is_file():
        return f"takes the path of a PEM file; {path} is not a file"
    return None


def _not_empty(value: str) -> str | None:
    return "takes a non-empty value" if not value.strip() else None


def _seconds(low: int, high: int) -> Callable[[int], str | None]:
    def check(value: int) -> str | None:
        return None if low <= value <= high else f"takes a number of seconds from {low} to {high}, not {value}"

    return check


KEYS = {
    key.name: key
    for key in (
        Key("agent.default", str, None, "agent used when --agent is not given (a preset name or an ACP command line)",
            check=_agent_command),
        Key("agent.provider", str, None, "built-in agent: anthropic or openai (OpenAI-compatible servers too)",
            ("anthropic", "openai"), env="TETHER_AGENT_PROVIDER"),
        Key("agent.model", str, None, "built-in agent: the model name, e.g. claude-sonnet-4-5 or llama3.1",
            check=_not_empty, env="TETHER_AGENT_MODEL"),
        Key("agent.mode", str, None, "the mode an agent starts in (else the one where it asks), e.g. plan",
            check=_not_empty),
        Key("relay.url", str, None, "relay used when --relay is not given (default: embedded on 127.0.0.1)",
            check=_relay_url),
        Key("relay.ca", str, None, "PEM file of the private CA a relay's certificate must chain to (--relay-ca)",
            check=_pem_file, check_file=False),
        Key("remote.auto_start", bool, False, "start every interactive session in a trusted folder with Remote "
            "Control on"),
        Key("remote.outage_window", int, 600, "seconds a lost relay link may take to come back before the "
            "remote session ends (tether rc then exits with status 3)", check=_seconds(1, 86400)),
        Key("remote.takeover", str, "ask", "a device taking over from the one in control: ask at the terminal "
            "(ask), or admit a paired device at once (paired)", ("ask", "paired")),
        Key(
            "remote.tunnel",
            str,
            None,
            "publish the embedded relay for phones through cloudflared or tailscale (when --relay is not given)",
            ("cloudflared", "tailscale"),
        ),
        Key("sandbox.default", bool, False, "run the agent in the sandbox unless --no-sandbox is given"),
        Key("sandbox.mechanism", str, "auto", "what --sandbox uses on Linux: auto (bubblewrap, else Landlock), "
            "bwrap or landlock", ("auto", "bwrap", "landlock")),
        Key("sandbox.auto_approve", bool, False, "with --sandbox, approve by itself what the sandbox confines: "
            "edits and understood commands in the project (never network, installs, deletes, outside paths)"),
        Key("approvals.timeout_seconds", int, 600, "an unanswered approval is denied after this long",
            check=_seconds(1, 86400)),
    )
}  # fmt: skip


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
    return text


def validate(key: Key, value: Any, setting: bool = True) -> Any:
    """``value`` if it fits ``key`` (type, choices, check); ConfigError saying what fits otherwise."""
    if not isinstance(value, key.type) or (key.type is int and isinstance(value, bool)):
        raise ConfigError(f"{key.name} takes a {TYPE_WORDS.get(key.type, key.type.__name__)}, not {value!r}")
    if key.choices and value not in key.choices:
        allowed = ", ".join(key.choices[:-1]) + f" or {key.choices[-1]}"
        raise ConfigError(f"{key.name} takes {allowed}, not {value!r}")
    if key.check is not None and (setting or key.check_file) and (problem := key.check(value)):
        raise ConfigError(f"{key.name} {problem}")
    return value


TYPE_WORDS = {bool: "true or false", int: "whole number", str: "text value"}


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
        value = self._document().get(table, {}).get(leaf, None)
        if value is None:
            return key.default
        value = value.unwrap() if hasattr(value, "unwrap") else value
        try:
            return validate(key, value, setting=False)
        except ConfigError as exc:
            raise ConfigError(f"{exc} (in {self.path}; fix it or run `tether config unset {name}`)") from None

    def set(self, name: str, text: str) -> Any:
        """Parse and check ``text`` for ``name``, then write it to the file; returns the value."""
        key = self.key(name)
        value = validate(key, _parse(key, text))
        document = self._document()
        table, _, leaf = name.partition(".")
        if table not in document:
            document[table] = tomlkit.table()
        document[table][leaf] = value
        self._write(document)
        return value

    def unset(self, name: str) -> bool:
        """Remove ``name`` from the file so its default applies again; False if it was not set."""
        self.key(name)
        document = self._document()
        table, _, leaf = name.partition(".")
        section = document.get(table)
        if section is None or leaf not in section:
            return False
        del section[leaf]
        if not section:
            del document[table]
        self._write(document)
        return True

    def _write(self, document: tomlkit.TOMLDocument) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(tomlkit.dumps(document), encoding="utf-8")
        os.replace(temporary, self.path)

    def table(self, name: str) -> dict[str, Any]:
        """A whole table of the file as plain values (``[permissions]``: rules, not keys), {} if absent."""
        value = self._document().get(name, {})
        return dict(value.unwrap() if hasattr(value, "unwrap") else value)

    def items(self) -> list[tuple[Key, Any]]:
        """Every key with its current value."""
        return [(key, self.get(key.name)) for key in KEYS.values()]

    def sources(self, environ: Mapping[str, str] | None = None) -> list[tuple[Key, Any, str]]:
        """Every key, the value in force and where it comes from: the environment, the file, or the default."""
        environ = os.environ if environ is None else environ
        document = self._document()
        rows = []
        for key in KEYS.values():
            table, _, leaf = key.name.partition(".")
            if key.env and environ.get(key.env):
                rows.append((key, environ[key.env], f"environment {key.env}"))
            elif leaf in document.get(table, {}):
                rows.append((key, self.get(key.name), str(self.path)))
            else:
                rows.append((key, key.default, "default"))
        return rows
