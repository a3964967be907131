"""End-to-end channel crypto between host and viewer, without I/O (docs/e2e.md).

DESIGN.md rules 2 and 3: the relay forwards frames it cannot read or forge. Per viewer
connection both ends make a fresh ephemeral X25519 key and run a two-message handshake::

    viewer                                          host
    KeyOffer {public_key: V}            ------->
                                        <-------    KeyReply {public_key: H, confirm}

    shared = X25519(v, H) = X25519(h, V)
    T      = "tether-e2e-v1" | u16 len(session id) | session id | V | H
    K_x    = HKDF-SHA256(ikm=shared, salt=pairing secret, info=label_x | 0x00 | T)
    confirm = HMAC-SHA256(K_confirm, T)

The pairing secret (32 random bytes in the session URL's fragment) is the HKDF salt, so a
relay that sees the whole exchange, or replaces both public keys with its own, still
cannot derive any key. The same schedule gives one AES-256-GCM key per direction, the
6-digit pairing code both screens show and a resume secret for later reconnection.

Each frame's payload is sealed with its direction's key; the nonce is 4 zero bytes then
the frame's 8-byte sequence number, and the associated data is the 10-byte frame header
followed by the session id, so a frame moved to another session, renumbered, reordered,
replayed, reflected or with any header bit flipped fails to open.

Calling contract (sans-IO: no socket, no clock; randomness is a parameter):

- Viewer: ``hs = ViewerHandshake(session_id, pairing_secret, random_bytes)``; send
  ``hs.offer()`` as the first message of the connection; pass the host's KeyReply to
  ``keys = hs.receive(reply)``. A wrong pairing secret, a tampered key or a bad
  confirmation raises RemoteProtocolError and fails the handshake for good: close the
  connection and start again with a new ``ViewerHandshake``.
- Host: ``hs = HostHandshake(session_id, pairing_secret, random_bytes)`` for each new
  viewer connection; ``reply, keys = hs.receive(offer)``; send ``reply``. The host has
  no proof yet that the viewer knows the pairing secret: the first frame that
  ``keys.opener`` opens is that proof (implicit key confirmation). Show
  ``keys.pairing_code`` and admit the device only after it.
- Then ``keys.sealer.seal_frame(frame)`` turns each outgoing frame (``Channel.send``
  output) into the bytes to send, in order; ``keys.opener.open_frame(data)`` turns each
  received frame back into a plaintext frame for ``Channel.receive``. A frame that does
  not open raises RemoteProtocolError and leaves the opener as it was (drop, count, go on).

The handshake messages travel in plaintext frames, the first frame each way (seq 1), so
sealed frames start at ``FIRST_SEALED_SEQ``: send the handshake message through the
Channel like any other message and its next frames are numbered as the sealer expects.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hmac
import json
import re
import struct
from collections.abc import Callable
from dataclasses import asdict, dataclass
from hashlib import sha256
from typing import Any, ClassVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tether.errors import LocalProtocolError, RemoteProtocolError
from tether.protocol.frames import HEADER, HEADER_SIZE

JSON = dict[str, Any]

LABEL = b"tether-e2e-v1"
KEY_SIZE = 32  # X25519 keys, AES-256 keys, the pairing secret, the resume secret
TAG_SIZE = 16  # AES-GCM tag appended to every sealed payload
NONCE_PREFIX = bytes(4)  # nonce = 4 zero bytes | seq (u64 big-endian): 96 bits
CODE_DIGITS = 6
FIRST_SEALED_SEQ = 2  # seq 1 each way carries the handshake message in the clear
RESUME_ID_SIZE = 12  # bytes of the public name of a resume secret (resume_id)

# HKDF info labels, one per derived value (docs/e2e.md "Key schedule").
VIEWER_TO_HOST = b"viewer to host"
HOST_TO_VIEWER = b"host to viewer"
CONFIRM = b"confirm"
RESUME = b"resume"
PAIRING_CODE = b"pairing code"

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64url(data: bytes) -> str:
    """Base64url without padding, as every binary field of a message is written."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: object, size: int, what: str, error: type[Exception] = RemoteProtocolError) -> bytes:
    """The ``size`` bytes ``text`` encodes in canonical unpadded base64url, or raise ``error``."""
    if not isinstance(text, str) or not _B64URL.fullmatch(text):
        raise error(f"{what} is not base64url text")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise error(f"{what} is not base64url text") from None
    if len(data) != size or b64url(data) != text:
        raise error(f"{what} must encode exactly {size} bytes")
    return data


def _session_bytes(session_id: str) -> bytes:
    data = session_id.encode("utf-8")
    if not 1 <= len(data) <= 0xFFFF:
        raise ValueError("a session id is 1 to 65535 bytes of UTF-8")
    return data


def transcript(session_id: str, viewer_public: bytes, host_public: bytes) -> bytes:
    """T: what the key schedule and the host's confirmation bind (see module doc)."""
    sid = _session_bytes(session_id)
    return LABEL + struct.pack(">H", len(sid)) + sid + viewer_public + host_public


def nonce(seq: int) -> bytes:
    """The 96-bit AES-GCM nonce of frame ``seq``."""
    return NONCE_PREFIX + struct.pack(">Q", seq)


def associated_data(header: bytes, session_id: str) -> bytes:
    """What each frame's tag also covers: its 10-byte header, then the session id."""
    return header + _session_bytes(session_id)


@dataclass(frozen=True, slots=True)
class Schedule:
    """Everything one handshake derives (the same at both ends)."""

    viewer_to_host: bytes  # AES-256-GCM key of frames the viewer sends
    host_to_viewer: bytes  # AES-256-GCM key of frames the host sends
    confirm_key: bytes  # HMAC-SHA256 key of the host's key confirmation
    resume_secret: bytes  # for a later reconnection without pairing again; never sent
    pairing_code: str  # 6 decimal digits both screens show


def _hkdf(shared: bytes, salt: bytes, label: bytes, t: bytes, length: int) -> bytes:
    kdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=label + b"\x00" + t)
    return kdf.derive(shared)


def key_schedule(
    shared_secret: bytes, pairing_secret: bytes, session_id: str, viewer_public: bytes, host_public: bytes
) -> Schedule:
    """Derive every key of a connection from the X25519 output and the pairing secret."""
    if len(pairing_secret) != KEY_SIZE:
        raise ValueError(f"the pairing secret is {KEY_SIZE} bytes")
    t = transcript(session_id, viewer_public, host_public)

    def derive(label: bytes, length: int = KEY_SIZE) -> bytes:
        return _hkdf(shared_secret, pairing_secret, label, t, length)

    # 8 bytes reduced mod 10**6: the bias (2**64 mod 10**6 of 2**64 values) is negligible.
    code = int.from_bytes(derive(PAIRING_CODE, 8), "big") % 10**CODE_DIGITS
    return Schedule(
        viewer_to_host=derive(VIEWER_TO_HOST),
        host_to_viewer=derive(HOST_TO_VIEWER),
        confirm_key=derive(CONFIRM),
        resume_secret=derive(RESUME),
        pairing_code=f"{code:0{CODE_DIGITS}d}",
    )


def resume_id(resume_secret: bytes) -> str:
    """The public name of a resume secret: a key_offer names it, the secret itself never travels."""
    return b64url(sha256(b"tether-resume-id\x00" + resume_secret).digest()[:RESUME_ID_SIZE])


def host_confirmation(confirm_key: bytes, t: bytes) -> bytes:
    """The host's proof that it derived the same keys: HMAC-SHA256(K_confirm, T)."""
    return hmac.new(confirm_key, t, sha256).digest()


# Handshake messages. They become message kinds of protocol/messages.py when wired in,
# so they keep that module's shape: KIND, FIELDS, check, to_json, serialize, parse.


@dataclass(frozen=True, slots=True)
class _HandshakeMessage:
    KIND: ClassVar[str]
    FIELDS: ClassVar[dict[str, int]]  # field name -> size of the bytes its base64url text encodes
    OPTIONAL: ClassVar[dict[str, int]] = {}  # the same, for fields that may be absent (None)

    def check(self, error: type[Exception] = LocalProtocolError) -> None:
        """Raise ``error`` unless every field is canonical base64url of its size."""
        for name, size in self.FIELDS.items():
            unb64url(getattr(self, name), size, f"{self.KIND} field {name!r}", error)
        for name, size in self.OPTIONAL.items():
            if getattr(self, name) is not None:
                unb64url(getattr(self, name), size, f"{self.KIND} field {name!r}", error)

    def to_json(self) -> JSON:
        """The message as a JSON object, ``kind`` first; absent optional fields left out."""
        return {"kind": self.KIND, **{k: v for k, v in asdict(self).items() if v is not None}}

    def serialize(self) -> bytes:
        """The UTF-8 JSON payload of the message's frame."""
        self.check()
        return json.dumps(self.to_json(), separators=(",", ":")).encode()

    @classmethod
    def _load(cls, payload: bytes) -> JSON:
        try:
            data = json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise RemoteProtocolError(f"{cls.KIND} payload is not UTF-8 JSON") from None
        if not isinstance(data, dict) or data.get("kind") != cls.KIND:
            raise RemoteProtocolError(f"payload is not a {cls.KIND} message")
        del data["kind"]
        if not set(cls.FIELDS) <= set(data) <= set(cls.FIELDS) | set(cls.OPTIONAL):
            raise RemoteProtocolError(f"{cls.KIND} needs exactly the fields {sorted(cls.FIELDS)}")
        return data


@dataclass(frozen=True, slots=True)
class KeyOffer(_HandshakeMessage):
    """viewer -> host, first message of a connection: the viewer's ephemeral public key."""

    KIND: ClassVar[str] = "key_offer"
    FIELDS: ClassVar[dict[str, int]] = {"public_key": KEY_SIZE}
    OPTIONAL: ClassVar[dict[str, int]] = {"resume": RESUME_ID_SIZE}
    public_key: str  # base64url of 32 bytes
    # A viewer coming back to a session it was admitted to names the resume secret of its
    # last connection (resume_id), which is then the salt instead of the pairing secret.
    resume: str | None = None

    @classmethod
    def parse(cls, payload: bytes) -> KeyOffer:
        """Decode a payload; raise RemoteProtocolError unless it is a well-formed key_offer."""
        offer = cls(**cls._load(payload))
        offer.check(RemoteProtocolError)
        return offer


@dataclass(frozen=True, slots=True)
class KeyReply(_HandshakeMessage):
    """host -> viewer, first message of a connection: the host's ephemeral public key and its confirmation."""

    KIND: ClassVar[str] = "key_reply"
    FIELDS: ClassVar[dict[str, int]] = {"public_key": KEY_SIZE, "confirm": 32}
    public_key: str  # base64url of 32 bytes
    confirm: str  # base64url of HMAC-SHA256(K_confirm, T)

    @classmethod
    def parse(cls, payload: bytes) -> KeyReply:
        """Decode a payload; raise RemoteProtocolError unless it is a well-formed key_reply."""
        reply = cls(**cls._load(payload))
        reply.check(RemoteProtocolError)
        return reply


# Sealing and opening frames.


def _header_seq(header: bytes, error: type[Exception]) -> int:
    if len(header) != HEADER_SIZE:
        raise error(f"a frame header is {HEADER_SIZE} bytes, not {len(header)}")
    seq: int = HEADER.unpack(header)[2]
    return seq


def _aead(key: bytes) -> AESGCM:
    if len(key) != KEY_SIZE:
        raise ValueError(f"an AES-256-GCM key is {KEY_SIZE} bytes")
    return AESGCM(key)


class Sealer:
    """Seals the frames one end sends, in order, each under its own sequence number.

    ``seal`` and ``seal_frame`` accept only the frame numbered ``next_seq`` (the Channel
    numbers them so) and then advance it: a nonce is never used twice under one key.
    """

    def __init__(self, key: bytes, session_id: str, next_seq: int = FIRST_SEALED_SEQ) -> None:
        self._aead = _aead(key)
        self.session_id = session_id
        _session_bytes(session_id)
        self.next_seq = next_seq

    def seal(self, header: bytes, plaintext: bytes) -> bytes:
        """The ciphertext (with its 16-byte tag) of ``plaintext`` sent under ``header``."""
        seq = _header_seq(header, LocalProtocolError)
        if seq != self.next_seq:
            raise LocalProtocolError(f"frame {seq} sealed out of order: the next is {self.next_seq}")
        sealed = self._aead.encrypt(nonce(seq), plaintext, associated_data(header, self.session_id))
        self.next_seq += 1
        return sealed

    def seal_frame(self, frame: bytes) -> bytes:
        """A whole frame (header + plaintext payload) as sent: header + sealed payload."""
        header = bytes(frame[:HEADER_SIZE])
        return header + self.seal(header, bytes(frame[HEADER_SIZE:]))


class Opener:
    """Opens the frames one end receives, strictly in order (seq == ``next_seq`` only).

    A frame out of order, replayed, truncated or altered raises RemoteProtocolError and
    changes nothing, so the genuine frame of that number can still be opened.
    """

    def __init__(self, key: bytes, session_id: str, next_seq: int = FIRST_SEALED_SEQ) -> None:
        self._aead = _aead(key)
        self.session_id = session_id
        _session_bytes(session_id)
        self.next_seq = next_seq

    def open(self, header: bytes, ciphertext: bytes) -> bytes:
        """The plaintext of a frame received with ``header``; RemoteProtocolError if it does not open."""
        seq = _header_seq(header, RemoteProtocolError)
        if seq != self.next_seq:
            raise RemoteProtocolError(f"expected sealed frame {self.next_seq}, got {seq}")
        if len(ciphertext) < TAG_SIZE:
            raise RemoteProtocolError(f"sealed frame {seq} is shorter than its tag")
        try:
            plaintext = self._aead.decrypt(nonce(seq), ciphertext, associated_data(header, self.session_id))
        except InvalidTag:
            raise RemoteProtocolError(f"sealed frame {seq} failed authentication") from None
        self.next_seq += 1
        return plaintext

    def open_frame(self, data: bytes) -> bytes:
        """A received frame as the plaintext frame ``Channel.receive`` takes."""
        header = bytes(data[:HEADER_SIZE])
        return header + self.open(header, bytes(data[HEADER_SIZE:]))


@dataclass(frozen=True, slots=True)
class Keys:
    """One end's result of a handshake."""

    sealer: Sealer  # for the frames this end sends
    opener: Opener  # for the frames this end receives
    pairing_code: str  # show it; both ends show the same
    resume_secret: bytes  # 32 bytes, for reconnecting later without pairing again
    transcript: bytes  # T of this connection: what a paired device signs to prove its key (protocol/signing.py)


# The handshake state machines.


class State(enum.Enum):
    """Where a handshake is: START -> OFFERED (viewer only) -> DONE, or FAILED for good."""

    START = "start"
    OFFERED = "offered"
    DONE = "done"
    FAILED = "failed"


def _ephemeral(random_bytes: Callable[[int], bytes]) -> X25519PrivateKey:
    material = random_bytes(KEY_SIZE)
    if len(material) != KEY_SIZE:
        raise ValueError(f"random_bytes({KEY_SIZE}) returned {len(material)} bytes")
    return X25519PrivateKey.from_private_bytes(material)


def _exchange(private: X25519PrivateKey, peer: bytes) -> bytes:
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(peer))
    except ValueError:
        # OpenSSL refuses a low-order point: the shared secret would be all zeros.
        raise RemoteProtocolError("the peer's public key is not usable for X25519") from None


class _Handshake:
    def __init__(self, session_id: str, pairing_secret: bytes, random_bytes: Callable[[int], bytes]) -> None:
        if len(pairing_secret) != KEY_SIZE:
            raise ValueError(f"the pairing secret is {KEY_SIZE} bytes")
        _session_bytes(session_id)
        self.session_id = session_id
        self._secret = pairing_secret
        self._private = _ephemeral(random_bytes)
        self.public_key = self._private.public_key().public_bytes_raw()
        self.state = State.START


class ViewerHandshake(_Handshake):
    """The viewer's end: ``offer()`` once, then ``receive(reply)`` (calling contract: module doc)."""

    def offer(self, resume: str | None = None) -> KeyOffer:
        """The first message to send on the connection (``resume``: the resume_id the salt is the secret of)."""
        if self.state is not State.START:
            raise LocalProtocolError(f"offer() in state {self.state.value}: a handshake offers once")
        self.state = State.OFFERED
        return KeyOffer(public_key=b64url(self.public_key), resume=resume)

    def receive(self, reply: KeyReply) -> Keys:
        """Check the host's reply; the keys, or RemoteProtocolError (the handshake then fails for good)."""
        if self.state is State.START:
            raise LocalProtocolError("receive() before offer()")
        if self.state is not State.OFFERED:
            raise RemoteProtocolError(f"key_reply in state {self.state.value}")
        self.state = State.FAILED  # until every check passed
        reply.check(RemoteProtocolError)
        host_public = unb64url(reply.public_key, KEY_SIZE, "host public key")
        shared = _exchange(self._private, host_public)
        schedule = key_schedule(shared, self._secret, self.session_id, self.public_key, host_public)
        t = transcript(self.session_id, self.public_key, host_public)
        expected = host_confirmation(schedule.confirm_key, t)
        if not hmac.compare_digest(expected, unb64url(reply.confirm, 32, "confirm")):
            raise RemoteProtocolError("the host's key confirmation does not match: wrong pairing secret or tampering")
        self.state = State.DONE
        return Keys(
            sealer=Sealer(schedule.viewer_to_host, self.session_id),
            opener=Opener(schedule.host_to_viewer, self.session_id),
            pairing_code=schedule.pairing_code,
            resume_secret=schedule.resume_secret,
            transcript=t,
        )


class HostHandshake(_Handshake):
    """The host's end, one per viewer connection: ``receive(offer)`` (calling contract: module doc)."""

    def receive(self, offer: KeyOffer) -> tuple[KeyReply, Keys]:
        """The reply to send and this end's keys; RemoteProtocolError for a bad offer (fails for good)."""
        if self.state is not State.START:
            raise RemoteProtocolError(f"key_offer in state {self.state.value}")
        self.state = State.FAILED  # until every check passed
        offer.check(RemoteProtocolError)
        viewer_public = unb64url(offer.public_key, KEY_SIZE, "viewer public key")
        shared = _exchange(self._private, viewer_public)
        schedule = key_schedule(shared, self._secret, self.session_id, viewer_public, self.public_key)
        t = transcript(self.session_id, viewer_public, self.public_key)
        confirm = host_confirmation(schedule.confirm_key, t)
        self.state = State.DONE
        reply = KeyReply(public_key=b64url(self.public_key), confirm=b64url(confirm))
        keys = Keys(
            sealer=Sealer(schedule.host_to_viewer, self.session_id),
            opener=Opener(schedule.viewer_to_host, self.session_id),
            pairing_code=schedule.pairing_code,
            resume_secret=schedule.resume_secret,
            transcript=t,
        )
        return reply, keys
