"""Where the relay's credential state lives between processes: the ``Ledger`` interface.

:class:`~tether.relay.admission.Admission` decides, purely, from three tables: single-use
nonces, each session's generation, each end's newest routing nonce. One relay process
keeps them in its own memory, and :class:`Ledger` (this module) is a no-op. Relays that
share sessions through Redis (``redis_broker.py``) must share these tables too: a viewer
may present on one process the join token another process minted. Their ledger
(``RedisLedger``, ``redis_ledger.py``) copies a session's entries in before a decision (``load``), writes them
back after it (``save``), and uses nonces with ``SET NX EX`` so a token works once across
every process (``use``).

Calling contract (``gate.py``): ``load`` then the Admission call, with no ``await`` in
between; after a call that changed state, ``save``; when the session ends, ``end``. A
decision that reads state another process changed in the meantime is caught by the
nonce (``use`` is atomic) or fenced at the next renewal.
"""

from __future__ import annotations

from tether.relay.admission import Admission


class Ledger:
    """The credential state of one relay process: all in its Admission, nothing to do."""

    async def load(self, admission: Admission, session: str) -> None:
        """Copy ``session``'s shared entries into ``admission`` (here they already are)."""

    async def save(self, admission: Admission, session: str, roles: tuple[str, ...]) -> None:
        """Write ``session``'s generation and the entries of ``roles`` where the other processes read them.

        Only the roles the decision changed: another process may have renewed the other end
        meanwhile, and writing back this process's copy of it would fence that renewal.
        """

    async def seen(self, nonce: str) -> bool:
        """Whether another process used ``nonce`` already (here: Admission's own NonceBook knows)."""
        return False

    async def use(self, nonce: str, expires: float, now: float) -> bool:
        """Use ``nonce`` up until ``expires``: False if it was used before (here: Admission's NonceBook decides)."""
        return True

    async def end(self, admission: Admission, session: str) -> None:
        """The session is over everywhere (Admission.end has run here)."""
