"""Lean stand-ins for ``asyncio.Queue`` and ``asyncio.Event``, for objects a relay holds per connection.

asyncio's Queue holds three ``deque`` objects and its Event one from the moment they are
made, about 600 bytes each, whether anyone ever waits or not. A relay holds a receive
queue, a "writable" flag and a mailbox event per connection, tens of thousands of them,
mostly idle: these make their waiters only when someone waits. Each offers only what its
users call (uvicorn's WebSocket protocol, ``broker.Mailbox``).
"""

from __future__ import annotations

import asyncio
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
