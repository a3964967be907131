"""The Remote Control sessions live on this machine, so a paired device can switch between them.

Each host with a session URL leaves one file, ``live/<session>.json`` in the state folder
(mode 0600, like the paired devices): the URL, the session's title, agent and folder, and the
host's process id. A device admitted to one session is sent the others (message ``sessions``,
docs/protocol.md section 3), so the viewer lists all of the user's live sessions on this
relay and opens any of them; the device is paired, so it is admitted there without a new
question.

The URLs carry their pairing secrets: only this user's files hold them (the state folder is
the user's), and they go only to a device the user confirmed, through the end-to-end channel,
never to one admitted by ``--accept-device``. A file whose host died without removing it (its
process is gone) is removed by the next reader.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any

from tether.host.paired import _write_private
from tether.paths import state_dir

JSON = dict[str, Any]
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")  # as the relay issues them (docs/protocol.md section 1)
SHOWN = ("id", "url", "title", "agent", "cwd")  # what a device is told of each session


def _alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: not ours, so not one of our hosts
        return False
    return True


class LiveSessions:
    """The ``live/`` folder of the state folder: one file per live session of this user."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = (folder or state_dir()) / "live"

    def publish(self, session_id: str, url: str, info: JSON) -> None:
        """Record (or update) this host's session and its current URL."""
        record = {"id": session_id, "url": url, "pid": os.getpid(),
                  **{key: str(info.get(key, "")) for key in ("title", "agent", "cwd")}}  # fmt: skip
        _write_private(self.folder / f"{session_id}.json", json.dumps(record))

    def withdraw(self, session_id: str) -> None:
        """The session ended: remove its file."""
        with contextlib.suppress(OSError):
            (self.folder / f"{session_id}.json").unlink(missing_ok=True)

    def stamp(self) -> tuple[tuple[str, int], ...]:
        """Changes whenever a session is added, updated or removed."""
        try:
            return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in self.folder.glob("*.json")))
        except OSError:
            return ()

    def others(self, session_id: str) -> list[JSON]:
        """Every other live session (id, url, title, agent, cwd), by folder and title."""
        found: list[JSON] = []
        for path in self.folder.glob("*.json"):
            if path.stem == session_id:
                continue
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if not isinstance(record, dict) or record.get("id") != path.stem or not SESSION_ID.fullmatch(path.stem):
                continue
            if not _alive(record.get("pid")):
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            if not all(isinstance(record.get(key), str) for key in SHOWN):
                continue
            found.append({key: record[key] for key in SHOWN})
        return sorted(found, key=lambda record: (record["cwd"], record["title"], record["id"]))
