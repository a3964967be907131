"""Workspace trust: Remote Control is only available in folders trusted locally.

A folder is trusted when it, or a folder above it, was trusted with ``tether trust`` or
with "y" to the question ``tether`` asks at the terminal on the first run in an untrusted
folder (before anything of the folder is read or run: the agent starts after the answer).
The list lives in the state folder as JSON and is only ever changed by a local command or
that local answer, never by anything arriving from the relay or a viewer. Trusting ``/``
or the home folder trusts everything below it, so ``tether trust`` warns.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tether.errors import NotTrusted, UserError
from tether.paths import state_dir


class NoSuchFolder(UserError):
    """Check the path: `tether trust` takes a folder that exists (default: the current one)."""


def question(folder: Path) -> str:
    """The question asked at the terminal in an untrusted folder (what trusting means, in one line)."""
    return (
        f"Do you trust the files in {folder}? Trusting lets the agent run with this folder's own settings "
        "and lets Remote Control (your phone) drive it here. [y/N] "
    )


def broad(folder: Path, home: Path) -> str | None:
    """A warning when ``folder`` is ``/`` or the home folder (or above it): it trusts far more than a project."""
    folder, home = folder.resolve(), home.resolve()
    if folder == Path(folder.anchor) or folder == home or home.is_relative_to(folder):
        return (
            f"{folder} holds every project below it, including ones you have not read: "
            "each of them is now trusted. Trust project folders one by one instead (`tether untrust` undoes this)."
        )
    return None


class TrustStore:
    """The trusted folders, persisted in ``trust.json``."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or state_dir() / "trust.json"

    def folders(self) -> list[Path]:
        """Trusted folders, sorted."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except ValueError:
            raise NotTrusted(f"the trust list {self.path} is not valid JSON; fix or delete it") from None
        return sorted(Path(p) for p in data.get("trusted", []))

    def _save(self, folders: list[Path]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        payload = {"trusted": sorted({str(f) for f in folders})}
        temporary.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        os.replace(temporary, self.path)

    def trust(self, folder: Path) -> Path:
        """Trust ``folder`` (resolved); returns it."""
        folder = folder.expanduser().resolve()
        if not folder.exists():
            raise NoSuchFolder(f"{folder} does not exist")
        if not folder.is_dir():
            raise NoSuchFolder(f"{folder} is not a folder")
        self._save([*self.folders(), folder])
        return folder

    def untrust(self, folder: Path) -> bool:
        """Forget ``folder``; False if it was not in the list."""
        folder = folder.resolve()
        current = self.folders()
        if folder not in current:
            return False
        self._save([f for f in current if f != folder])
        return True

    def is_trusted(self, folder: Path) -> bool:
        """True if ``folder`` or a folder above it is trusted."""
        folder = folder.resolve()
        return any(folder == f or folder.is_relative_to(f) for f in self.folders())

    def require(self, folder: Path) -> None:
        """Raise NotTrusted, naming the command to run, unless ``folder`` is trusted."""
        if not self.is_trusted(folder):
            raise NotTrusted(
                f"{folder.resolve()} is not a trusted folder, so Remote Control is not available here.\n"
                f"Run `tether trust {folder.resolve()}` first if you trust the code in it."
            )
