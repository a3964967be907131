"""Log output that can never stop the program it reports on.

A relay out of file descriptors once died of its own log: the root logger's file handler,
closed by a logging reconfiguration, tried to reopen its file inside asyncio's exception
handler, failed with EMFILE, and the exception escaped the event loop (issue 8). So:

- :class:`QuietFileHandler` opens its file once and keeps it; a record it cannot write
  is lost, never raised; a ``close`` from a reconfiguration is ignored (the file is
  closed when the process ends);
- :class:`QuietStreamHandler` does the same for stderr;
- ``logging.raiseExceptions`` is off (``quiet_logging``), so no handler's error prints a
  traceback of its own.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class QuietStreamHandler(logging.StreamHandler[TextIO]):
    """A stream handler whose failures lose the record and nothing else."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            super().emit(record)
        except Exception:  # a full disk, a closed pipe, no descriptors left: drop the line
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:
        """Nothing: a log line that cannot be written is lost, never an error."""


class QuietFileHandler(QuietStreamHandler):
    """Appends to ``path``, opened once now; see the module doc."""

    def __init__(self, path: Path) -> None:
        super().__init__(path.open("a", encoding="utf-8"))  # kept open for the process (module doc)
        self.path = path

    def close(self) -> None:
        # logging.config.dictConfig (uvicorn's log setup) closes every handler it finds;
        # reopening later could fail for want of descriptors, so the file stays open.
        self.flush()


def quiet_logging() -> None:
    """Make the logging module itself silent about its own failures."""
    logging.raiseExceptions = False


def log_to_file(path: Path, level: int = logging.WARNING) -> None:
    """Send the root logger's records at ``level`` and above to ``path`` (a NullHandler if it cannot be opened)."""
    quiet_logging()
    handler: logging.Handler
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = QuietFileHandler(path)
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
