"""What a standalone relay process (``tether relay serve``) sets up for itself, and the limits it derives.

An embedded relay leaves its host process alone; a standalone one owns its process, so
at start it:

- raises its soft descriptor limit to the hard one (``raise_descriptor_limit``): the
  usual soft 1024 is what an idle-connection flood exhausts first;
- fixes glibc's mmap threshold at 4 MiB and gives free heap memory back to the system
  after a flood (``return_freed_memory``). Frames up to 1 MiB are allocated and freed by
  the thousand under load: mmapped one by one (a threshold of 128 KiB), each costs page
  faults on every copy the frame parser makes, and a 1 MB frame's round trip took 4.9 ms
  against 2-4 ms for the bare forwarder (issue 13; ``make bench``, row "1 MB frame"); on
  the heap it takes 3.7-4.3 ms, within 1.1x of it. The heap keeps what a flood of queued
  frames leaves (``benchmarks/relay_memory.py``, 40 sessions of unread 1 MiB frames: 502
  MiB after it, from 81), so when the relay's queues are empty again after holding at
  least ``TRIM_AFTER`` bytes at once, ``malloc_trim`` returns the free pages a second
  later (once the flood's connections are closed too): 132 MiB after the 40 sessions,
  240 MiB after 150 (with every frame mmapped instead: 162 and 285). What stays is heap
  fragmentation; tracemalloc finds no object left of the flood;
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

import asyncio
import contextlib
import ctypes
import ctypes.util
import json
import logging
import re
import sys
import time
from collections.abc import Callable

from tether.logs import QuietStreamHandler, quiet_logging
from tether.relay.config import MAX_CONNECTIONS, RelayConfig

RESERVED_DESCRIPTORS = 64  # for the listening socket, the event loop, logs, files served, the account store
MIN_CONNECTIONS = 8
M_MMAP_THRESHOLD = -3  # glibc mallopt parameter (malloc.h)
MMAP_THRESHOLD = 4 * 1024 * 1024  # fixed: blocks above it are mmapped and unmapped on free; frames stay below
TRIM_AFTER = 8 * 1024 * 1024  # bytes queued at once that, once the queues are empty again, are worth trimming
TRIM_DELAY = 1.0  # seconds from the queues' emptying to the trim


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


def return_freed_memory() -> Callable[[int], None] | None:
    """Fix glibc's mmap threshold; what to call when the relay's queues are empty again (see the module doc).

    The callable takes the most bytes that were queued at once meanwhile, and gives free
    heap memory back to the system when that was a flood (``TRIM_AFTER``). None where
    there is no glibc.
    """
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):  # musl and others have no mallopt
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int
    if not mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD):
        return None

    def drained(most_queued: int) -> None:
        if most_queued >= TRIM_AFTER:
            # A moment later: the connections of a flood close after their queues are dropped,
            # and their transports' buffers are freed then.
            asyncio.get_running_loop().call_later(TRIM_DELAY, malloc_trim, 0)

    return drained


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
