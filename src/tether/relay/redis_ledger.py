"""Admission's credential tables in Redis, shared by every relay process of one ``--broker redis://...``.

A viewer may present on one process the join token another process minted, so the
processes share these tables (ledger.py has the why and the calling contract). All of it
expires: each session's generation (``tether:g:SESSION``) and each end's newest routing
nonce (``tether:c:SESSION:ROLE``) are kept for the longest token lifetime plus
``ROUTING_KEY_SLACK``; single-use nonces are ``SET NX EX`` keys (``tether:u:NONCE``) that
expire with their token. A process keeps no copy: each decision loads the session's entries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tether.relay.admission import HOST, VIEWER, Admission
from tether.relay.ledger import Ledger

if TYPE_CHECKING:
    import redis.asyncio as aioredis

ROUTING_KEY_SLACK = 60.0  # seconds a credential key outlives the routing token it names


class RedisLedger(Ledger):
    """The credential tables of ``Admission`` in Redis, shared by every process (see ledger.py)."""

    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix  # the broker's: every key it names starts with it

    def _keys(self, session: str) -> list[str]:
        prefix = self.prefix
        return [f"{prefix}g:{session}", f"{prefix}c:{session}:{HOST}", f"{prefix}c:{session}:{VIEWER}"]

    async def load(self, admission: Admission, session: str) -> None:
        generation, host, viewer = await self.redis.mget(self._keys(session))
        for slot, value in (((session, HOST), host), ((session, VIEWER), viewer)):
            if value:
                admission.current[slot] = value.decode()
            else:
                admission.current.pop(slot, None)
        if generation:
            admission.generations[session] = generation.decode()
        else:
            admission.generations.pop(session, None)

    async def save(self, admission: Admission, session: str, roles: tuple[str, ...]) -> None:
        lifetime = int(max(admission.lifetimes.values()) + ROUTING_KEY_SLACK)
        generation_key, host_key, viewer_key = self._keys(session)
        async with self.redis.pipeline(transaction=True) as pipe:
            generation = admission.generations.get(session)
            if generation is not None:
                pipe.set(generation_key, generation, ex=lifetime)
            for key, role in ((host_key, HOST), (viewer_key, VIEWER)):
                if role not in roles:
                    continue
                current = admission.current.get((session, role))
                if current is None:
                    pipe.delete(key)
                else:
                    pipe.set(key, current, ex=lifetime)
            await pipe.execute()
        self._forget(admission, session)

    async def seen(self, nonce: str) -> bool:
        return bool(await self.redis.exists(f"{self.prefix}u:{nonce}"))

    async def use(self, nonce: str, expires: float, now: float) -> bool:
        ttl = max(1, int(expires - now) + 1)
        return bool(await self.redis.set(f"{self.prefix}u:{nonce}", b"1", nx=True, ex=ttl))

    async def end(self, admission: Admission, session: str) -> None:
        await self.redis.delete(*self._keys(session))
        self._forget(admission, session)

    @staticmethod
    def _forget(admission: Admission, session: str) -> None:
        # Redis holds the truth; this process keeps no copy that could go stale.
        admission.generations.pop(session, None)
        admission.current.pop((session, HOST), None)
        admission.current.pop((session, VIEWER), None)
