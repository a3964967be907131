"""SecureChannel: a Channel whose frames are sealed end to end (docs/protocol.md section 2), without I/O.

One per viewer connection, at either end. The first frame each way (seq 1) carries the
handshake message in the clear (``key_offer`` from the viewer; ``key_reply`` or
``key_refused`` from the host); every later frame is sealed with the keys the handshake
made (protocol/crypto.py) and then sequenced and reassembled by a plain Channel.

- Host: ``reply = secure.accept(handshake, offer_frame_data)`` after ``offer(data)`` parsed it;
  Viewer: ``secure.offer_frame(handshake)`` then ``secure.take_reply(handshake, data)``.
- ``seal(payload)`` -> the sealed frames to send, in order; ``open(data)`` -> the message
  (or None). A frame that does not open, or a message that does not parse, raises
  RemoteProtocolError; the caller drops it, counts it and goes on.
"""

from __future__ import annotations

import json

from tether.errors import LocalProtocolError, RemoteProtocolError
from tether.protocol.channel import Channel
from tether.protocol.crypto import FIRST_SEALED_SEQ, HostHandshake, KeyOffer, KeyReply, Keys, ViewerHandshake
from tether.protocol.frames import Frame
from tether.protocol.messages import Message

KEY_REFUSED = "key_refused"  # host -> viewer, in the clear: no handshake with this offer, and why


def handshake_frame(payload: bytes) -> bytes:
    """The first frame of a connection (seq 1), carrying a handshake message in the clear."""
    return Frame(seq=1, payload=payload).serialize()


def handshake_payload(data: bytes) -> bytes:
    """The payload of a peer's first frame; RemoteProtocolError unless it is a whole frame with seq 1."""
    frame = Frame.parse(data)
    if frame.seq != 1 or frame.more:
        raise RemoteProtocolError(f"the first frame of a connection has seq 1 and no MORE flag, got seq {frame.seq}")
    return frame.payload


def refusal(reason: str) -> bytes:
    """The host's first frame when it will not run a handshake with this offer."""
    return handshake_frame(json.dumps({"kind": KEY_REFUSED, "reason": reason}, separators=(",", ":")).encode())


class SecureChannel:
    """Sealing and sequencing for one end of one viewer connection (see module doc)."""

    def __init__(self) -> None:
        self.channel = Channel()
        self.keys: Keys | None = None

    def _ready(self, keys: Keys) -> None:
        self.keys = keys
        self.channel.next_send_seq = FIRST_SEALED_SEQ
        self.channel.next_recv_seq = FIRST_SEALED_SEQ

    # -- host --------------------------------------------------------------------------

    def accept(self, handshake: HostHandshake, offer: KeyOffer) -> bytes:
        """Run the host's side of the handshake; the key_reply frame to send."""
        reply, keys = handshake.receive(offer)
        self._ready(keys)
        return handshake_frame(reply.serialize())

    # -- viewer ------------------------------------------------------------------------

    def offer_frame(self, handshake: ViewerHandshake, resume: str | None = None) -> bytes:
        return handshake_frame(handshake.offer(resume).serialize())

    def take_reply(self, handshake: ViewerHandshake, data: bytes) -> Keys:
        """The host's first frame: the keys, or RemoteProtocolError (a refusal says why in its message)."""
        payload = handshake_payload(data)
        try:
            refused = json.loads(payload)
        except ValueError:
            refused = None
        if isinstance(refused, dict) and refused.get("kind") == KEY_REFUSED:
            raise RemoteProtocolError(f"the host refused the connection: {refused.get('reason')}")
        keys = handshake.receive(KeyReply.parse(payload))
        self._ready(keys)
        return keys

    # -- both --------------------------------------------------------------------------

    def seal(self, payload: bytes) -> list[bytes]:
        """The sealed frames carrying a serialized message, in order."""
        if self.keys is None:
            raise LocalProtocolError("seal() before the handshake")
        return [self.keys.sealer.seal_frame(frame) for frame in self.channel.send_payload(payload)]

    def send(self, message: Message) -> list[bytes]:
        return self.seal(message.serialize())

    def open(self, data: bytes) -> Message | None:
        """One received sealed frame: the completed message, or None (more fragments, unknown kind)."""
        if self.keys is None:
            raise RemoteProtocolError("a sealed frame before the handshake")
        return self.channel.receive(self.keys.opener.open_frame(data))
