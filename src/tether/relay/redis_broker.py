"""Routing through Redis, so that many relay processes share sessions (``--broker redis://...``).

A host on one relay process and its viewer on another talk as if they were on one. What
Redis holds, all of it expiring, none of it content:

- presence: ``tether:p:SESSION:ROLE`` = ``NODE:END``, the process (node) and connection
  (end) holding that end, ``SET`` in a ``WATCH``/``MULTI`` transaction after
  ``routing.join`` allowed it and refreshed every ``ttl / 3`` seconds while the
  connection lives; each process also refreshes ``tether:alive:NODE`` every
  ``NODE_TTL / 3``. An end whose process's liveness key is gone counts as absent (a host
  and viewer whose relay died come back through another one within ``NODE_TTL``), and
  its presence key expires after ``ttl`` anyway;
- credentials (``RedisLedger``, redis_ledger.py): each session's generation and each end's
  newest routing nonce, and single-use nonces as ``SET NX EX`` keys that expire with their token;
- delivery: one pub/sub channel per process (``tether:n:NODE``). Frames and control
  events for an end on another process are published there, prefixed with the end's id;
  nothing is stored: a message nobody subscribes to is gone.

Decisions are ``routing.join`` / ``routing.leave`` on the state read from the presence
keys, exactly as ``MemoryBroker`` makes them; effects for an end on another process are
published to that process, which carries them out.

Order: every process publishes through one connection, in order and pipelined
(redis_wire.py, which also reads the subscription), and Redis delivers a channel's
messages in the order one connection published them, so the ``peer joined`` a viewer's
process sends reaches the host before any frame of that viewer. redis-py's pool is sized
explicitly and blocks when all its connections are busy (its default pool opens a
connection per concurrent call).

Flow control across processes is coarser than within one: a publisher cannot see the
reader's queue on the other process. The receiving process queues what arrives for an
end in its mailbox; when that is full, in a backlog of at most one more queue's worth
(``QueueLimits.max_bytes``), drained as the mailbox empties; a reader whose mailbox and
backlog are both full, or stay full for ``slow_timeout``, is cut 4408 like a slow reader
on one process. Senders on a process wait when its outgoing publish queue holds more
than ``redis_wire.OUTBOX_BYTES`` (Redis is slower than they are).

A host that comes back after its connection was lost (docs/protocol.md, "Reconnection")
needs nothing kept here: its routing token is the relay's signed word that it held the
session in that generation, and a ledger that has no generation for the session takes the
token's (admission.py). A host lost without a close frame (or cut by a stopping relay)
closes its viewer 4503 ``host away`` on whatever process the viewer is.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, cast

from tether.errors import BrokerUnavailable, Refused
from tether.relay import routing
from tether.relay.broker import Attachment, Broker, Mailbox, QueueLimits
from tether.relay.ledger import Ledger
from tether.relay.redis_ledger import RedisLedger
from tether.relay.redis_wire import Feed, Publisher
from tether.relay.routing import CloseCode, Counters, Drop, PeerState, Role, SessionState

if TYPE_CHECKING:
    import redis.asyncio as aioredis

logger = logging.getLogger("tether.relay")
T = TypeVar("T")

PREFIX = "tether:"
PRESENCE_TTL = 15.0  # seconds an end's presence key outlives a process that died without leaving
NODE_TTL = 5.0  # seconds a process's own liveness key outlives it: its ends count as gone after that
POOL_SIZE = 32  # Redis connections per process for transactions and credential keys
POOL_TIMEOUT = 10.0  # seconds a call waits for a free connection
RESUBSCRIBE_DELAY = 0.5  # seconds between attempts to subscribe again after Redis went away

FRAME, JOINED, LEFT, CLOSE, DISMISS = b"F", b"J", b"L", b"C", b"D"
END_ID_BYTES = 6  # the end's id: 12 hex characters


@dataclass(eq=False, slots=True)
class RemoteAttachment(Attachment):
    """An end attached through Redis: its id, where its peer is, what waits for its mailbox."""

    end: str = ""
    peer: tuple[str, str] | None = None  # (node, end) of the other end, once known
    backlog: collections.deque[bytes] = field(default_factory=collections.deque, repr=False)
    backlog_bytes: int = 0
    drainer: asyncio.Task[None] | None = field(default=None, repr=False)


class _Joined(NamedTuple):
    """What ``attach`` decided in its transaction."""

    outcome: routing.Outcome
    orphan: tuple[str, str] | None  # a live viewer of a host whose relay died: sent away
    held: dict[Role, tuple[str, str] | None]  # the live end holding each role, as it decided


class _Left(NamedTuple):
    """What ``_leave`` or ``drop`` decided in its transaction: the presence it decided on."""

    outcome: routing.Outcome
    host: bytes | None
    viewer: bytes | None


def _presence(session: str, role: Role) -> str:
    return f"{PREFIX}p:{session}:{role}"


def _ref(value: bytes | None) -> tuple[str, str] | None:
    if not value:
        return None
    node, _, end = value.decode().partition(":")
    return node, end


class RedisBroker(Broker):
    """Routing shared by every relay process that names the same Redis (see the module doc)."""

    def __init__(
        self,
        url: str,
        counters: Counters | None = None,
        limits: QueueLimits | None = None,
        *,
        presence_ttl: float = PRESENCE_TTL,
        pool_size: int = POOL_SIZE,
    ) -> None:
        super().__init__(counters, limits)
        try:
            import redis.asyncio as aioredis
        except ImportError:  # pragma: no cover - a dependency of tether
            raise BrokerUnavailable("the Redis broker needs the redis package (pip install redis)") from None
        try:
            pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=pool_size, timeout=POOL_TIMEOUT)
        except ValueError as exc:
            raise BrokerUnavailable(f"bad Redis URL: {exc}") from None
        self.redis: aioredis.Redis = aioredis.Redis(connection_pool=pool)
        self.node = secrets.token_hex(8)
        self.ttl = presence_ttl
        self.ledger: Ledger = RedisLedger(self.redis, PREFIX)
        self._ends: dict[str, RemoteAttachment] = {}  # this process's ends by id
        self._publisher = Publisher(pool, self.counters)  # what goes to other processes, in order
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._started: asyncio.Future[None] | None = None
        self.subscribed = False  # this process hears its channel (/readyz)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to this process's channel and start the writer and the presence refresher (once)."""
        if self._started is None:
            self._started = asyncio.get_running_loop().create_future()
            try:
                await self.redis.set(self._alive(self.node), b"1", px=int(NODE_TTL * 1000))
                pubsub = self.redis.pubsub()
                await pubsub.subscribe(self._channel(self.node))
            except Exception as exc:
                error = BrokerUnavailable(f"cannot reach Redis: {exc}")
                self._started.set_exception(error)
                self._started.exception()  # retrieved: whoever awaits gets it
                self._started = None
                raise error from None
            self.subscribed = True
            self._tasks = [
                asyncio.create_task(self._subscriber(pubsub), name="tether redis subscriber"),
                asyncio.create_task(self._publisher.run(), name="tether redis writer"),
                asyncio.create_task(self._refresher(), name="tether redis presence"),
            ]
            self._started.set_result(None)
        await self._started

    async def ready(self) -> bool:
        if not self.subscribed:
            return False
        try:
            async with asyncio.timeout(2.0):
                return bool(await cast(Awaitable[bool], self.redis.ping()))
        except Exception:
            return False

    async def close_all(self, code: CloseCode) -> None:
        for end in list(self._ends.values()):
            end.mailbox.close(code)
            with contextlib.suppress(Exception):
                await self._leave(end, clean=False)  # the relay stopping: its hosts come back elsewhere
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await self._publisher.flush()
        for task in [*self._tasks, *self._background]:
            task.cancel()
        for task in [*self._tasks, *self._background]:
            with contextlib.suppress(BaseException):
                await task
        self._tasks = []
        self._started = None
        with contextlib.suppress(Exception):
            await self.redis.aclose()
        with contextlib.suppress(Exception):
            await self.redis.connection_pool.disconnect()  # the broker made the pool: Redis.aclose leaves it

    # -- the Broker interface ------------------------------------------------------------

    async def attach(self, session_id: str, role: Role, take_over: bool = False, returning: bool = False) -> Attachment:
        if not routing.valid_session_id(session_id):
            outcome = routing.join(session_id, role, SessionState.ABSENT)
            assert outcome.refusal is not None
            raise Refused(outcome.refusal, routing.REFUSALS[outcome.refusal])
        await self.start()
        end = secrets.token_hex(END_ID_BYTES)
        me = f"{self.node}:{end}"
        keys = [_presence(session_id, Role.HOST), _presence(session_id, Role.VIEWER)]

        async def decide(pipe: Any, host: bytes | None, viewer: bytes | None) -> _Joined:
            # An end held by a relay process that died is not there (its keys outlive it).
            stale = []
            if not await self._live(host):
                stale.append(keys[0])
                host = None
            if not await self._live(viewer):
                stale.append(keys[1])
                viewer = None
            # A live viewer whose host's relay died holds a seat in no session: it is
            # sent away (1001, it reconnects) so that it can join the host coming back.
            orphan = _ref(viewer) if viewer is not None and host is None else None
            if orphan is not None:
                stale.append(keys[1])
                viewer = None
            present = {r for r, value in ((Role.HOST, host), (Role.VIEWER, viewer)) if value}
            outcome = routing.join(session_id, role, SessionState.of(present), take_over, returning)
            if outcome.refusal is not None:
                raise Refused(outcome.refusal, routing.REFUSALS[outcome.refusal])
            pipe.multi()
            gone = [
                keys[1] for effect in outcome.effects
                if isinstance(effect, routing.Dismiss) and effect.role is Role.VIEWER and role is Role.HOST
            ]  # fmt: skip
            if stale or gone:
                pipe.delete(*stale, *gone)
            pipe.set(_presence(session_id, role), me, px=int(self.ttl * 1000))
            # A take-over: the viewer in place (wherever it is) is dismissed, its key overwritten;
            # a host coming back dismisses its old connection and, with it, their viewer.
            return _Joined(outcome, orphan, {Role.HOST: _ref(host), Role.VIEWER: _ref(viewer)})

        joined = await self._transaction(session_id, decide)
        assert joined is not None  # decide writes or raises
        outcome, orphan, held = joined
        if orphan is not None:
            self._send_effect(session_id, orphan, routing.Close(Role.VIEWER, CloseCode.GOING_AWAY))
        attachment = RemoteAttachment(session_id, role, Mailbox(self.limits, self.budget), end=end)
        self._ends[end] = attachment
        if role is Role.VIEWER:
            attachment.peer = held[Role.HOST]
        for effect in outcome.effects:
            if isinstance(effect, routing.Dismiss):
                if (target := held[effect.role]) is not None:
                    self._send_effect(session_id, target, effect)
            else:
                self._carry_out(attachment, effect)
        return attachment

    async def drop(self, attachment: Attachment) -> None:
        assert isinstance(attachment, RemoteAttachment)
        if self._ends.get(attachment.end) is not attachment:
            return
        session, me = attachment.session_id, f"{self.node}:{attachment.end}".encode()

        async def decide(pipe: Any, host: bytes | None, viewer: bytes | None) -> _Left | None:
            present = {r for r, value in ((Role.HOST, host), (Role.VIEWER, viewer)) if value}
            outcome = routing.drop(attachment.role, SessionState.of(present))
            if host != me or not outcome.effects:
                return None  # not this session's host, or no viewer to drop
            pipe.multi()
            pipe.delete(_presence(session, Role.VIEWER))
            return _Left(outcome, host, viewer)

        decided = await self._transaction(session, decide)
        if decided is None:
            return
        outcome, viewer = decided.outcome, decided.viewer
        dropped = _ref(viewer)
        for effect in outcome.effects:
            if isinstance(effect, routing.Dismiss):
                if dropped is not None:
                    self._send_effect(session, dropped, effect)
            else:
                self._apply_local(attachment, effect, None)

    async def forward(self, attachment: Attachment, frame: bytes) -> None:
        assert isinstance(attachment, RemoteAttachment)
        if self._ends.get(attachment.end) is not attachment:
            return  # evicted, or its session ended
        target = attachment.peer
        if target is None:
            self.counters.count(Drop.NO_PEER)
            return
        node, end = target
        if node != self.node:
            await self._publisher.publish(self._channel(node), FRAME + end.encode() + frame)
            return
        peer = self._ends.get(end)
        if peer is None:
            self.counters.count(Drop.NO_PEER)
            return
        room = await peer.mailbox.wait_for_room(len(frame))
        if self._ends.get(attachment.end) is not attachment or self._ends.get(end) is not peer:
            return
        if room:
            peer.mailbox.push(frame)
        elif peer.mailbox.closing is None:
            await self.evict(peer, CloseCode.TOO_SLOW)

    def forward_now(self, attachment: Attachment, frame: bytes) -> bool:
        assert isinstance(attachment, RemoteAttachment)
        if self._ends.get(attachment.end) is not attachment:
            return True  # evicted, or its session ended
        target = attachment.peer
        if target is None:
            self.counters.count(Drop.NO_PEER)
            return True
        node, end = target
        if node != self.node:
            if self._publisher.behind():
                return False  # Redis is behind: forward waits
            self._publisher.enqueue(self._channel(node), FRAME + end.encode() + frame)
            return True
        peer = self._ends.get(end)
        if peer is None:
            self.counters.count(Drop.NO_PEER)
            return True
        if peer.mailbox.closing is not None or not peer.mailbox.has_room(len(frame)):
            return False
        peer.mailbox.push(frame)
        return True

    async def detach(self, attachment: Attachment, clean: bool = True) -> None:
        assert isinstance(attachment, RemoteAttachment)
        await self._leave(attachment, clean)

    async def evict(self, attachment: Attachment, code: CloseCode) -> None:
        assert isinstance(attachment, RemoteAttachment)
        if self._ends.get(attachment.end) is not attachment:
            return
        if code is CloseCode.TOO_SLOW and attachment.mailbox.closing is None:
            self.counters.count(Drop.TOO_SLOW)
        attachment.mailbox.close(code, discard=True)
        await self._leave(attachment, clean=False)  # the relay cut it: not an end the host chose

    async def session_count(self) -> int:
        """Sessions whose host is attached to this process (each process counts its own)."""
        return sum(1 for end in self._ends.values() if end.role is Role.HOST)

    async def _transaction(
        self, session: str, decide: Callable[[Any, bytes | None, bytes | None], Awaitable[T | None]]
    ) -> T | None:
        """``decide`` on the session's presence, in one WATCH / MULTI transaction; again if it changed meanwhile.

        ``decide(pipe, host, viewer)`` gets the two presence values and either calls
        ``pipe.multi()``, queues its writes and returns what it decided, or returns None to
        write nothing. Its writes go through only if neither key changed since it read
        them (another relay process deciding on the same session): else it decides again
        on the new values. What it raises goes through.
        """
        keys = [_presence(session, Role.HOST), _presence(session, Role.VIEWER)]
        from redis.exceptions import WatchError

        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(*keys)
                    host, viewer = await pipe.mget(keys)
                    decided = await decide(pipe, host, viewer)
                    if decided is None:
                        await pipe.unwatch()  # type: ignore[no-untyped-call]
                        return None
                    await pipe.execute()
                    return decided
                except WatchError:
                    continue  # another process changed the session meanwhile: decide again

    async def _live(self, value: bytes | None) -> bool:
        """Whether a presence value names an end of a process that is alive (this one, or one whose key is fresh)."""
        ref = _ref(value)
        if ref is None:
            return True  # nothing there: nothing stale
        return ref[0] == self.node or bool(await self.redis.exists(self._alive(ref[0])))

    # -- leaving ---------------------------------------------------------------------------

    async def _leave(self, attachment: RemoteAttachment, clean: bool = True) -> None:
        if self._ends.pop(attachment.end, None) is None:
            return  # already gone: evicted, or its session ended with its host
        self._drop_backlog(attachment)
        session, role = attachment.session_id, attachment.role
        me = f"{self.node}:{attachment.end}".encode()

        async def decide(pipe: Any, host: bytes | None, viewer: bytes | None) -> _Left | None:
            if (host if role is Role.HOST else viewer) != me:
                return None  # the key expired or another end holds it: this end is not in the session
            present = {r for r, value in ((Role.HOST, host), (Role.VIEWER, viewer)) if value}
            outcome = routing.leave(role, SessionState.of(present), clean)
            pipe.multi()
            pipe.delete(_presence(session, role))
            if outcome.next is SessionState.ABSENT:
                pipe.delete(_presence(session, Role.HOST), _presence(session, Role.VIEWER))  # DESIGN.md rule 8
            return _Left(outcome, host, viewer)

        left = await self._transaction(session, decide)
        if left is None:
            return
        outcome, host, viewer = left
        peer = _ref(viewer if role is Role.HOST else host)
        for effect in outcome.effects:
            if peer is not None:
                self._send_effect(session, peer, effect)

    # -- effects, local or published -------------------------------------------------------

    def _carry_out(self, joining: RemoteAttachment, effect: routing.Effect) -> None:
        """An effect of ``joining``'s join: on itself here, on its peer wherever that is."""
        to = effect.to if isinstance(effect, routing.Notify) else effect.role
        if to is joining.role:
            self._apply_local(joining, effect, None)
        elif joining.peer is not None:
            self._send_effect(joining.session_id, joining.peer, effect, about=(self.node, joining.end))

    def _send_effect(
        self, session: str, target: tuple[str, str], effect: routing.Effect, about: tuple[str, str] | None = None
    ) -> None:
        node, end = target
        if node == self.node:
            local = self._ends.get(end)
            if local is not None:
                self._apply_local(local, effect, about)
            return
        if isinstance(effect, routing.Close):
            message = CLOSE + end.encode() + str(int(effect.code)).encode()
        elif isinstance(effect, routing.Dismiss):
            message = DISMISS + end.encode() + str(int(effect.code)).encode() + (b"d" if effect.discard else b"")
        elif effect.state is PeerState.JOINED:
            assert about is not None
            message = JOINED + end.encode() + f"{about[0]}:{about[1]}".encode()
        else:
            message = LEFT + end.encode() + (effect.reason or "").encode()
        self._publisher.enqueue(self._channel(node), message)

    def _apply_local(self, end: RemoteAttachment, effect: routing.Effect, about: tuple[str, str] | None) -> None:
        if isinstance(effect, routing.Close | routing.Dismiss):
            # Dismissed (taken over, dropped by its host): out of the session, whose keys moved on.
            end.mailbox.close(effect.code, discard=isinstance(effect, routing.Dismiss) and effect.discard)
            self._ends.pop(end.end, None)  # the session is over: its keys went with the host's leave
            self._drop_backlog(end)
            return
        if effect.state is PeerState.JOINED:
            end.peer = about if about is not None else end.peer
        else:
            end.peer = None
        if not end.mailbox.push_control(effect.message()):
            self.counters.count(Drop.TOO_SLOW)
            end.mailbox.close(CloseCode.TOO_SLOW, discard=True)
            self._spawn(self._leave(end, clean=False))

    # -- what arrives from other processes -----------------------------------------------

    def _dispatch(self, data: bytes) -> None:
        kind, end_id, rest = data[:1], data[1 : 1 + 2 * END_ID_BYTES].decode(), data[1 + 2 * END_ID_BYTES :]
        end = self._ends.get(end_id)
        if end is None:
            if kind == FRAME:
                self.counters.count(Drop.NO_PEER)
            return
        if kind == FRAME:
            self._deliver(end, rest)
        elif kind == JOINED:
            node, _, other = rest.decode().partition(":")
            peer_role = end.role.peer
            self._apply_local(end, routing.Notify(end.role, peer_role, PeerState.JOINED), (node, other))
        elif kind == LEFT:
            reason = rest.decode() or None
            self._apply_local(end, routing.Notify(end.role, end.role.peer, PeerState.LEFT, reason), None)
        elif kind == CLOSE:
            self._apply_local(end, routing.Close(end.role, CloseCode(int(rest))), None)
        elif kind == DISMISS:
            code, discard = rest.removesuffix(b"d"), rest.endswith(b"d")
            self._apply_local(end, routing.Dismiss(end.role, CloseCode(int(code)), discard), None)

    def _deliver(self, end: RemoteAttachment, frame: bytes) -> None:
        if not end.backlog and end.mailbox.has_room(len(frame)):
            end.mailbox.push(frame)
            return
        if end.backlog_bytes + len(frame) > self.limits.max_bytes:
            self._spawn(self.evict(end, CloseCode.TOO_SLOW))  # a second queue's worth waits already
            return
        end.backlog.append(frame)
        end.backlog_bytes += len(frame)
        if end.drainer is None:
            end.drainer = asyncio.create_task(self._drain(end))

    async def _drain(self, end: RemoteAttachment) -> None:
        try:
            while end.backlog:
                if not await end.mailbox.wait_for_room(len(end.backlog[0])):
                    if end.mailbox.closing is None:
                        await self.evict(end, CloseCode.TOO_SLOW)
                    return
                frame = end.backlog.popleft()
                end.backlog_bytes -= len(frame)
                end.mailbox.push(frame)
        finally:
            end.drainer = None

    def _drop_backlog(self, end: RemoteAttachment) -> None:
        end.backlog.clear()
        end.backlog_bytes = 0
        if end.drainer is not None and end.drainer is not asyncio.current_task():
            end.drainer.cancel()

    # -- the process's tasks -----------------------------------------------------------------

    def _channel(self, node: str) -> str:
        return f"{PREFIX}n:{node}"

    def _alive(self, node: str) -> str:
        return f"{PREFIX}alive:{node}"

    async def _subscriber(self, pubsub: Any) -> None:
        """Hand what arrives on this process's channel to its ends; ride out Redis going away.

        redis-py connects and subscribes; then the subscription's socket is read by a
        :class:`~tether.relay.redis_wire.Feed`, which hands each message over as it is read
        (no task wakes, nothing parsed twice). When the connection is lost, a new
        subscription is made.
        """
        try:
            while True:
                lost = Feed.install(pubsub, self._dispatch)
                await lost
                # What was published while there was no subscription is lost, as on a dropped connection.
                self.subscribed = False
                logger.warning("relay: the Redis subscription was lost")
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                while True:
                    await asyncio.sleep(RESUBSCRIBE_DELAY)
                    pubsub = self.redis.pubsub()
                    try:
                        await pubsub.subscribe(self._channel(self.node))
                        break
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        logger.warning("relay: subscribing to Redis again failed: %s", type(exc).__name__)
                        with contextlib.suppress(Exception):
                            await pubsub.aclose()
                # Subscribed again: a restarted Redis has lost this process's liveness and
                # presence keys; put them back (unless taken).
                self.subscribed = True
                self._spawn(self._register_again())
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _refresher(self) -> None:
        """Say this process lives (every ``NODE_TTL / 3``) and keep its presence keys alive (every ``ttl / 3``)."""
        beats = max(1, round(self.ttl / NODE_TTL))
        for beat in itertools.count():
            await asyncio.sleep(NODE_TTL / 3)
            ends = list(self._ends.values()) if beat % beats == 0 else []
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.set(self._alive(self.node), b"1", px=int(NODE_TTL * 1000))
                    for end in ends:
                        pipe.pexpire(_presence(end.session_id, end.role), int(self.ttl * 1000))
                    await pipe.execute()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.warning("relay: refreshing presence in Redis failed: %s", type(exc).__name__)

    async def _register_again(self) -> None:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(self._alive(self.node), b"1", px=int(NODE_TTL * 1000))
                for end in self._ends.values():
                    me = f"{self.node}:{end.end}"
                    pipe.set(_presence(end.session_id, end.role), me, px=int(self.ttl * 1000), nx=True)
                await pipe.execute()
        except Exception as exc:
            logger.warning("relay: registering again in Redis failed: %s", type(exc).__name__)

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
