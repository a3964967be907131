"""Lean stand-ins for asyncio's Queue, Event and timeout, for what a relay holds per connection.

asyncio's Queue holds three ``deque`` objects and its Event one from the moment they are
made, about 600 bytes each, whether anyone ever waits or not. A relay holds a receive
queue, a "writable" flag and a mailbox event per connection, tens of thousands of them,
mostly idle: these make their waiters only when someone waits. Each offers only what its
users call (uvicorn's WebSocket protocol, ``broker.Mailbox``). :class:`Deadlines` puts
the deadlines of all connections on a few timers.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Inbox(Generic[T]):
    """What uvicorn's protocol uses of ``asyncio.Queue`` (one reader), without its three deques.

    ``taken``, if given, is called each time ``get`` hands out an item (before it returns).
    """

    __slots__ = ("_items", "_taken", "_waiter")

    def __init__(self, taken: Callable[[], None] | None = None) -> None:
        self._items: list[T] = []
        self._waiter: asyncio.Future[None] | None = None
        self._taken = taken

    def put_nowait(self, item: T) -> None:
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> T:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items.pop(0)  # short: reading pauses after each message the app has not taken
        if self._taken is not None:
            self._taken()
        return item

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)


class Flag:
    """What uvicorn's protocol uses of ``asyncio.Event`` (``writable``), its waiters made on demand."""

    __slots__ = ("_value", "_waiters")

    def __init__(self) -> None:
        self._value = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        self._value = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._value = False

    async def wait(self) -> bool:
        if self._value:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
        return True


K = TypeVar("K")


class Deadlines(Generic[K]):
    """Many deadlines on one timer per second that has any, instead of an ``asyncio.timeout`` each.

    The relay holds one deadline per connection (its routing credential's expiry): an
    ``asyncio.timeout`` around each wait keeps a timeout object, a timer handle and a
    context alive for every idle connection (about 350 bytes). Here a deadline is an entry
    in one set per second of the ``clock`` (wall time, as credentials count it), and only
    seconds that have deadlines hold a timer. ``expired(key)`` is called at the end of the
    second a key's deadline falls in: up to one second late, never early.
    """

    __slots__ = ("_buckets", "_clock", "_expired", "_timers", "_where")

    def __init__(self, expired: Callable[[K], None], clock: Callable[[], float]) -> None:
        self._expired = expired
        self._clock = clock
        self._buckets: dict[int, set[K]] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._where: dict[K, int] = {}  # the second each key's deadline falls in

    def __len__(self) -> int:
        return len(self._where)

    def set(self, key: K, when: float) -> None:
        """``key`` expires at ``when`` (clock seconds); a deadline it had before is replaced."""
        self.drop(key)
        second = math.ceil(when)
        bucket = self._buckets.get(second)
        if bucket is None:
            bucket = self._buckets[second] = set()
            delay = max(0.0, second - self._clock())
            self._timers[second] = asyncio.get_running_loop().call_later(delay, self._fire, second)
        bucket.add(key)
        self._where[key] = second

    def drop(self, key: K) -> None:
        """Forget ``key``'s deadline, if it has one."""
        second = self._where.pop(key, None)
        if second is None:
            return
        bucket = self._buckets[second]
        bucket.discard(key)
        if not bucket:
            del self._buckets[second]
            self._timers.pop(second).cancel()

    def _fire(self, second: int) -> None:
        del self._timers[second]
        for key in self._buckets.pop(second, ()):
            del self._where[key]
            self._expired(key)
