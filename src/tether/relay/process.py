"""What a standalone relay process (``tether relay serve``) sets up for itself, and the limits it derives.

An embedded relay leaves its host process alone; a standalone one owns its process, so
at start it:

- raises its soft descriptor limit to the hard one (``raise_descriptor_limit``): the
  usual soft 1024 is what an idle-connection flood exhausts first;
- has glibc return large freed blocks to the system (``return_freed_memory``): frames up
  to 1 MiB are allocated and freed by the thousand under load, and with glibc's
  dynamic mmap threshold they end up on the heap, which it keeps. Measured with
  ``benchmarks/relay_memory.py``: after a flood of 40 sessions of unread 1 MiB frames
  the relay (no budget then) stayed at 479 MiB (from 43) without this, and came back to
  83 MiB with it (``MALLOC_MMAP_THRESHOLD_=131072``, the same setting). What stays is
  heap fragmentation, about 1-2 MiB per flooding session (figures in the benchmark's
  doc); ``malloc_trim`` and ``PYTHONMALLOC=malloc`` did not reduce it;
- logs uvicorn's lines and its own to stderr through a handler that never raises
  (``log_to_stderr``), as ``LEVEL: message`` or, with ``TETHER_RELAY_LOG_FORMAT=json``,
  one JSON object per line (``JsonLines``) with its connection events at INFO. What is
  logged never holds message content (frames are never logged), tokens (refusals name
  a reason, never the token) or URL secrets (the fragment never reaches a server); as a
  second line of defence, anything shaped like a PASETO token is blanked.

``connection_cap`` is used by embedded relays too: no more connections than the
descriptors left allow.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import logging
import re
import sys
import time

from tether.logs import QuietStreamHandler, quiet_logging
from tether.relay.config import MAX_CONNECTIONS, RelayConfig

RESERVED_DESCRIPTORS = 64  # for the listening socket, the event loop, logs, files served, the account store
MIN_CONNECTIONS = 8
M_MMAP_THRESHOLD = -3  # glibc mallopt parameter (malloc.h)
MMAP_THRESHOLD = 128 * 1024  # glibc's initial value, fixed: blocks above it are mmapped and unmapped on free


def descriptor_limit() -> int | None:
    """The soft limit on open descriptors, or None where there is none to read."""
    try:
        import resource
    except ImportError:  # not POSIX
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def raise_descriptor_limit() -> int | None:
    """Raise the soft descriptor limit to the hard one (as far as the system lets); the soft limit now."""
    try:
        import resource
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        # macOS refuses RLIM_INFINITY (and anything above OPEN_MAX) for the soft limit: keep what works.
        for target in (hard, 1 << 20, 10240):
            if target == resource.RLIM_INFINITY or (hard != resource.RLIM_INFINITY and target > hard):
                continue
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                break
    return descriptor_limit()


def connection_cap(config: RelayConfig) -> int:
    """The connections the relay keeps open at most: the configured cap, within the descriptors left."""
    cap = config.max_connections or MAX_CONNECTIONS
    limit = descriptor_limit()
    if limit is not None:
        cap = min(cap, max(MIN_CONNECTIONS, limit - RESERVED_DESCRIPTORS))
    return cap


def return_freed_memory() -> bool:
    """Fix glibc's mmap threshold (see the module doc); False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))


TOKEN_SHAPE = re.compile(r"v[1-4]\.(?:public|local)\.[A-Za-z0-9_\-.]+")
FIELDS = ("event", "role", "session", "code", "reason")  # the extra fields a relay log line may carry


class JsonLines(logging.Formatter):
    """One JSON object per record: time, level, logger, message and the relay's own fields (``FIELDS``)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": TOKEN_SHAPE.sub("[token]", record.getMessage()),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            line["error"] = record.exc_info[0].__name__  # the type only: a traceback may quote a frame
        return json.dumps(line, separators=(",", ":"))


def log_to_stderr(json_lines: bool = False) -> None:
    """uvicorn's warnings and the relay's lines on stderr, through a handler that never raises.

    As ``LEVEL: message`` (warnings only), or with ``json_lines`` one JSON object per line,
    the relay's connection events included (INFO).
    """
    quiet_logging()
    for name in ("uvicorn", "tether.relay"):
        logger = logging.getLogger(name)
        for old in [handler for handler in logger.handlers if isinstance(handler, QuietStreamHandler)]:
            logger.removeHandler(old)
        handler = QuietStreamHandler(sys.stderr)
        handler.setFormatter(JsonLines() if json_lines else logging.Formatter("%(levelname)s: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False  # not into the root's file as well
        if name == "tether.relay":
            logger.setLevel(logging.INFO if json_lines else logging.WARNING)
