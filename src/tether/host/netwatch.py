"""Hear the machine's network change (an interface up, an address or a route added or removed).

The relay link uses it to come back *at once* when the network returns (a laptop back on
Wi-Fi, a phone hotspot joined) instead of at its next backoff attempt, and to test a live
connection right away when the network under it changed (a new address: the old TCP
connection is likely dead, though no packet says so yet).

Linux: an rtnetlink socket subscribed to link, address and route notifications, read
without blocking from the event loop (unprivileged; nothing is sent). Elsewhere, or when
the socket cannot be opened, there is nothing to hear and :func:`watch` returns None: the
link then relies on its backoff and heartbeat alone.

Calling contract: ``watch(callback)`` once; ``callback()`` runs in the event loop after each
burst of notifications (one call per burst, read in one go); ``close()`` the returned watch
when done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable

log = logging.getLogger(__name__)

# linux/rtnetlink.h multicast groups: links, IPv4/IPv6 addresses, IPv4/IPv6 routes.
GROUPS = 0x1 | 0x10 | 0x40 | 0x100 | 0x400


class NetWatch:
    """An open rtnetlink subscription that calls ``callback`` when the network changes."""

    def __init__(self, sock: socket.socket, callback: Callable[[], None]) -> None:
        self._sock = sock
        self._callback = callback
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        changed = False
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while self._sock.recv(65536):
                changed = True
        if changed:
            try:
                self._callback()
            except Exception:  # the watcher must never take the link down
                log.exception("the network-change callback failed")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()


def watch(callback: Callable[[], None]) -> NetWatch | None:
    """Call ``callback`` whenever the machine's network changes; None where that cannot be heard."""
    family = getattr(socket, "AF_NETLINK", None)
    if family is None:
        return None
    try:
        sock = socket.socket(family, socket.SOCK_RAW | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC, 0)  # NETLINK_ROUTE
        sock.bind((0, GROUPS))
    except OSError as exc:
        log.info("network changes cannot be heard here (%s): the relay link relies on its backoff", exc)
        return None
    return NetWatch(sock, callback)
