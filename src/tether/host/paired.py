"""Paired devices and the audit log: the host's memory of who may drive its sessions, and of what they decided.

``PairedDevices`` is a JSON file in the state folder (``paired-devices.json``, mode 0600):
each browser paired at the terminal, by device id (``protocol.signing.device_id`` of its
public key), with its public key, name, and when it was first and last seen. A later
session admits a paired device without asking again; ``tether devices revoke ID``
removes it, and a running host notices within a second and drops its connection
(relay_link watches the file's modification time).

``AuditLog`` appends one JSON line per decision on a tool call (``audit.jsonl``): when,
who (``terminal``, a device's name and id, the local flag, the timeout), what (the
request's title and the SHA-256 of exactly what was shown), and the outcome. ``tether
audit`` prints it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from tether.paths import state_dir
from tether.protocol.signing import DeviceClaim, b64, unb64

JSON = dict[str, Any]
STALE_REQUEST = 600.0  # seconds: a pairing question outlives no pairing secret (host/pairing.py PAIRING_LIFETIME)


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(temporary, path)


class PairedDevices:
    """The paired-devices file (see module doc)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.path = (folder or state_dir()) / "paired-devices.json"

    def read(self) -> dict[str, JSON]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise OSError(f"cannot read the paired devices in {self.path}: {exc}") from None
        return data if isinstance(data, dict) else {}

    def stamp(self) -> float:
        """The file's modification time (0 when absent): changes whenever a device is added or revoked."""
        try:
            return self.path.stat().st_mtime_ns / 1e9
        except FileNotFoundError:
            return 0.0

    def key(self, device_id: str) -> bytes | None:
        """The public key of a paired, unrevoked device."""
        found = self.read().get(device_id)
        try:
            return unb64(found["public_key"], 32, "public key") if isinstance(found, dict) else None
        except Exception:
            return None

    def remember(self, device: DeviceClaim, now: float | None = None) -> None:
        """Pair ``device`` (or note that it was seen again)."""
        now = time.time() if now is None else now
        data = self.read()
        known = data.get(device.id) or {"public_key": b64(device.public_key), "first_seen": now}
        known.update(name=device.name, last_seen=now)
        data[device.id] = known
        _write_private(self.path, json.dumps(data, indent=2, sort_keys=True))

    def revoke(self, device_id: str) -> JSON | None:
        """Forget a device at once; what was known of it, or None if it was not paired."""
        data = self.read()
        gone = data.pop(device_id, None)
        if gone is not None:
            _write_private(self.path, json.dumps(data, indent=2, sort_keys=True))
        return gone


class AuditLog:
    """Append-only record of decisions (see module doc)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.path = (folder or state_dir()) / "audit.jsonl"

    def append(self, record: JSON) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"at": round(time.time(), 3), **record}, ensure_ascii=False, sort_keys=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as out:
            out.write(line + "\n")

    def read(self) -> list[JSON]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        records = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a torn last line after a crash: skip it, keep the rest
            if isinstance(record, dict):
                records.append(record)
        return records


class PairingRequests:
    """Pairing questions a host without a terminal leaves for ``tether devices accept`` (one file per session).

    The host writes ``pairing-requests/<session>.json`` when it asks; ``tether devices
    accept`` shows it, asks, and writes ``<session>.answer``; the host takes the answer
    (only for the same device and code it asked about) and removes both files.
    """

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = (folder or state_dir()) / "pairing-requests"

    def post(self, session_id: str, device: DeviceClaim, code: str) -> None:
        record = {"session": session_id, "device": device.id, "name": device.name, "code": code, "at": time.time()}
        _write_private(self.folder / f"{session_id}.json", json.dumps(record))

    def clear(self, session_id: str) -> None:
        for suffix in (".json", ".answer"):
            (self.folder / f"{session_id}{suffix}").unlink(missing_ok=True)

    def pending(self, now: float | None = None) -> list[JSON]:
        """The questions still open; one left by a host that died (older than a pairing secret lives) is removed."""
        now = time.time() if now is None else now
        found = []
        for path in sorted(self.folder.glob("*.json")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if not (isinstance(record, dict) and isinstance(record.get("session"), str)):
                continue
            if not isinstance(record.get("at"), int | float) or now - record["at"] > STALE_REQUEST:
                self.clear(record["session"])
                continue
            found.append(record)
        return found

    def answer(self, request: JSON, yes: bool) -> None:
        text = json.dumps({"device": request["device"], "code": request["code"], "yes": yes})
        _write_private(self.folder / f"{request['session']}.answer", text)

    def take_answer(self, session_id: str, device_id: str, code: str) -> bool | None:
        """The answer given for this session's question, if any (and only if it is about this device and code)."""
        path = self.folder / f"{session_id}.answer"
        try:
            answer = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        self.clear(session_id)
        if not isinstance(answer, dict) or (answer.get("device"), answer.get("code")) != (device_id, code):
            return False
        return answer.get("yes") is True
