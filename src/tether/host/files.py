"""The project folder boundary for the agent's ``fs/*`` requests.

Every path the agent names is resolved (symlinks included) and must stay inside the
project folder; anything else raises OutsideProject, which the ACP client turns into an
ACP error for the agent. The check happens on the resolved path so that a symlink inside
the project cannot point the agent at ``~/.ssh``.
"""

from __future__ import annotations

import os
from pathlib import Path

from tether.errors import OutsideProject


class ProjectFiles:
    """Reads and writes text files inside one project folder."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def resolve(self, path: str) -> Path:
        """The absolute, resolved path for ``path``; OutsideProject if it leaves the root."""
        candidate = Path(path)
        if not candidate.is_absolute():
            candidate = self.root / candidate
        resolved = candidate.resolve()
        if resolved != self.root and not resolved.is_relative_to(self.root):
            raise OutsideProject(f"{path} is outside the project folder {self.root}")
        return resolved

    def read(self, path: str, line: int | None = None, limit: int | None = None) -> str:
        """Text of ``path``; ``line`` (1-based) and ``limit`` select a range of lines (ACP)."""
        text = self.resolve(path).read_text(encoding="utf-8", errors="replace")
        if line is None and limit is None:
            return text
        lines = text.splitlines(keepends=True)
        start = max((line or 1) - 1, 0)
        end = len(lines) if limit is None else start + max(limit, 0)
        return "".join(lines[start:end])

    def read_if_exists(self, path: str) -> str | None:
        """Text of ``path`` or None when it does not exist (for diffs of new files)."""
        try:
            return self.read(path)
        except FileNotFoundError:
            return None

    def write(self, path: str, content: str) -> Path:
        """Write ``content`` to ``path`` atomically, creating parent folders inside the root."""
        target = self.resolve(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tether-tmp")
        temporary.write_text(content, encoding="utf-8")
        os.replace(temporary, target)
        return target
