"""Single use: a book of nonces seen, each kept until the credential it came with expires.

Pure (``now`` is a parameter). The memory book serves one relay process; several relay
processes share single use through Redis keys that expire (the scale issue), behind the
same two methods. Bounded: a full book refuses new nonces (fails closed) rather than grow.
"""

from __future__ import annotations

import heapq


class NonceBook:
    """Nonces seen and until when they matter."""

    def __init__(self, limit: int = 100_000) -> None:
        self._until: dict[str, float] = {}
        self._expiry: list[tuple[float, str]] = []
        self.limit = limit

    def use(self, nonce: str, until: float, now: float) -> bool:
        """Record ``nonce``; False if it was seen before (a replay) or the book is full."""
        self.purge(now)
        if nonce in self._until or len(self._until) >= self.limit:
            return False
        self._until[nonce] = until
        heapq.heappush(self._expiry, (until, nonce))
        return True

    def purge(self, now: float) -> None:
        """Forget nonces whose credentials can no longer be presented."""
        while self._expiry and self._expiry[0][0] <= now:
            _, nonce = heapq.heappop(self._expiry)
            self._until.pop(nonce, None)

    def __contains__(self, nonce: object) -> bool:
        return nonce in self._until

    def __len__(self) -> int:
        return len(self._until)
