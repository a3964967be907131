"""The project folder boundary for the agent's ``fs/*`` requests.

Every path the agent names is resolved (symlinks included) and must stay inside the
project folder; anything else raises OutsideProject, which the ACP client turns into an
ACP error for the agent. The check happens on the resolved path so that a symlink inside
the project cannot point the agent at ``~/.ssh``.

The project is not trusted content: a cloned repository can hold symlinks, named pipes
and huge files, and a command the agent runs can change the tree between two calls. So:

- Reads serve regular files only. A folder, FIFO, device or socket raises NotARegularFile
  before anything is opened that could block (a FIFO with no writer would hang the read
  forever; ``/dev/zero`` never ends), and a file larger than ``MAX_READ_BYTES`` (10 MiB)
  raises FileTooLarge: ACP sends the whole text in one JSON-RPC message, and no source
  file an agent should edit comes near that size. A missing file is FileNotFoundError.
- Writes go to a fresh temporary file created exclusively (``O_CREAT|O_EXCL|O_NOFOLLOW``,
  random name) in the target's folder, opened once and used through its descriptor; the
  folder is checked again just before the rename, so a folder swapped for a symlink out
  of the project in between is refused. The temporary file never outlives a failure.
  The project folder itself is not a file and cannot be written.

All refusals are FileRefused subclasses (tether.errors).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from tether.errors import FileTooLarge, NotARegularFile, OutsideProject

MAX_READ_BYTES = 10 * 1024 * 1024
"""The largest file ``read`` serves (10 MiB); larger ones raise FileTooLarge."""

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_TEMPORARY_ATTEMPTS = 16


class ProjectFiles:
    """Reads and writes text files inside one project folder (see module doc)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def resolve(self, path: str) -> Path:
        """The absolute, resolved path for ``path``; OutsideProject if it leaves the root."""
        candidate = Path(path)
        if not candidate.is_absolute():
            candidate = self.root / candidate
        resolved = candidate.resolve()
        self._check_inside(resolved, path)
        return resolved

    def inside(self, path: str) -> bool:
        """Whether ``path`` resolves inside the project (what ``resolve`` accepts)."""
        try:
            self.resolve(path)
        except OutsideProject:
            return False
        return True

    def _check_inside(self, resolved: Path, path: str) -> None:
        if resolved != self.root and not resolved.is_relative_to(self.root):
            raise OutsideProject(f"{path} is outside the project folder {self.root}")

    def read(self, path: str, line: int | None = None, limit: int | None = None) -> str:
        """Text of ``path``; ``line`` (1-based) and ``limit`` select a range of lines (ACP)."""
        text = _read_regular(self.resolve(path), path).decode("utf-8", errors="replace")
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
        if target == self.root:
            raise NotARegularFile(f"{path} is the project folder itself, not a file")
        if target.is_dir():
            raise NotARegularFile(f"{path} is a folder, not a file")
        target.parent.mkdir(parents=True, exist_ok=True)
        # mkdir may have walked through a symlink created since resolve(): look again.
        folder = target.parent.resolve()
        self._check_inside(folder, path)
        directory = os.open(folder, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC)
        try:
            try:
                mode: int | None = os.stat(target.name, dir_fd=directory, follow_symlinks=False).st_mode
            except FileNotFoundError:
                mode = None
            temporary = _write_temporary(directory, target.name, content, mode)
            try:
                # The folder path must still lead to the folder written into, inside the project.
                now = target.parent.resolve()
                self._check_inside(now, path)
                if not os.path.samestat(os.stat(now), os.fstat(directory)):
                    raise OutsideProject(f"{path}: its folder was moved or replaced while it was written")
                # Both names relative to the checked folder: the rename cannot land elsewhere.
                os.replace(temporary, target.name, src_dir_fd=directory, dst_dir_fd=directory)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary, dir_fd=directory)
                raise
        finally:
            os.close(directory)
        return target


def _read_regular(resolved: Path, path: str) -> bytes:
    """The bytes of a regular file of at most MAX_READ_BYTES, or a FileRefused (module doc)."""
    # stat first: opening a device can have effects of its own, and a FIFO can block.
    _require_regular(os.stat(resolved), path)
    try:
        # O_NONBLOCK: should a FIFO be swapped in after the stat, open returns at once.
        descriptor = os.open(resolved, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW | _CLOEXEC)
    except OSError as exc:
        if _NOFOLLOW and os.path.islink(resolved):  # swapped for a symlink since resolve()
            raise NotARegularFile(f"{path} changed into a symbolic link while it was read") from None
        raise exc from None
    with os.fdopen(descriptor, "rb") as file:
        _require_regular(os.fstat(descriptor), path)
        data = file.read(MAX_READ_BYTES + 1)  # the size may have grown since fstat
    if len(data) > MAX_READ_BYTES:
        raise FileTooLarge(f"{path} is larger than {MAX_READ_BYTES // (1024 * 1024)} MiB, the most tether reads")
    return data


def _require_regular(status: os.stat_result, path: str) -> None:
    if stat.S_ISDIR(status.st_mode):
        raise NotARegularFile(f"{path} is a folder, not a file")
    if not stat.S_ISREG(status.st_mode):
        raise NotARegularFile(f"{path} is a FIFO, device or socket, not a regular file")
    if status.st_size > MAX_READ_BYTES:
        raise FileTooLarge(f"{path} is larger than {MAX_READ_BYTES // (1024 * 1024)} MiB, the most tether reads")


def _write_temporary(directory: int, name: str, content: str, mode: int | None) -> str:
    """Create a new file next to ``name`` in ``directory``, write ``content``; its name.

    The name is fresh and opened with O_EXCL|O_NOFOLLOW, so no planted file or symlink is
    ever written through. ``mode`` (the replaced file's) is kept without set-id bits; a new
    file gets the usual 0666 less umask.
    """
    data = content.encode("utf-8")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
    for _ in range(_TEMPORARY_ATTEMPTS):
        temporary = f".{name}.{secrets.token_hex(6)}.tether-tmp"
        try:
            descriptor = os.open(temporary, flags, 0o666, dir_fd=directory)
        except FileExistsError:
            continue
        try:
            with os.fdopen(descriptor, "wb") as file:
                if mode is not None and stat.S_ISREG(mode):
                    os.fchmod(file.fileno(), stat.S_IMODE(mode) & 0o777)
                file.write(data)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=directory)
            raise
        return temporary
    raise FileExistsError(f"cannot create a temporary file for {name}: every name tried exists")
