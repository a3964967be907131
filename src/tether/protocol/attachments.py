"""Files and images sent with a prompt (docs/protocol.md section 3, ``prompt.attachments``), without I/O.

A viewer may attach up to ``MAX_COUNT`` files to a prompt, ``MAX_BYTES`` in all, each as
``{"name", "mime", "data"}`` with ``data`` the file's bytes in standard base64. The host
passes them to the agent as ACP content blocks, and only the kinds the agent said it takes
(its ``promptCapabilities``): an image (``image/png``, ``image/jpeg``, ``image/gif``,
``image/webp``) as an image block, any other file as an embedded resource. What is kept
in the transcript is each file's name, type and size, never its bytes.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

MAX_COUNT = 4
MAX_BYTES = 5 * 1024 * 1024  # decoded, all files of one prompt together
MAX_NAME = 200
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
MIME = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$")
IMAGE, FILE = "image", "file"  # what an agent may accept


@dataclass(frozen=True, slots=True)
class Attachment:
    name: str
    mime: str
    data: bytes

    @property
    def kind(self) -> str:
        return IMAGE if self.mime in IMAGE_TYPES else FILE

    def shown(self) -> dict[str, Any]:
        """What the transcript keeps of it."""
        return {"name": self.name, "mime": self.mime, "size": len(self.data)}


def parse(raw: object) -> tuple[Attachment, ...] | str:
    """The attachments of a prompt, or why they are refused (in words)."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_COUNT:
        return f"at most {MAX_COUNT} files can go with one prompt"
    found: list[Attachment] = []
    total = 0
    for item in raw:
        if not isinstance(item, dict) or set(item) != {"name", "mime", "data"}:
            return "an attachment needs exactly a name, a type and its data"
        name, mime, data = item["name"], item["mime"], item["data"]
        if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME or any(not c.isprintable() for c in name):
            return f"an attachment's name is 1 to {MAX_NAME} printable characters"
        if not isinstance(mime, str) or not MIME.match(mime.lower()):
            return f"{name}: not a media type ({str(mime)[:40]!r})"
        if not isinstance(data, str) or len(data) > (MAX_BYTES * 4) // 3 + 4:
            return f"the files of one prompt may be {MAX_BYTES // (1024 * 1024)} MiB in all"
        try:
            content = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            return f"{name}: its data is not base64"
        total += len(content)
        if total > MAX_BYTES:
            return f"the files of one prompt may be {MAX_BYTES // (1024 * 1024)} MiB in all"
        found.append(Attachment(name, mime.lower(), content))
    return tuple(found)


def refused_kinds(attachments: tuple[Attachment, ...], accepts: frozenset[str]) -> list[str]:
    """The names of the attachments the agent does not take (it said which kinds it accepts)."""
    return [a.name for a in attachments if a.kind not in accepts]
