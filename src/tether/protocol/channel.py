"""Channel: sequencing and fragmentation of messages over frames, without I/O.

A Channel is one end of a host<->viewer connection. It never touches a socket:

- ``send(message)`` returns the frames (bytes) to write, in order; write all of them.
- ``receive(data)`` takes one received binary WebSocket message and returns the
  completed Message, or ``None`` while fragments are still missing or when the message
  is of a kind this version does not know. A malformed or out-of-sequence frame raises
  RemoteProtocolError and leaves the channel as it was, so the caller can drop the frame,
  count it and carry on.
- ``reset()`` starts new sequence spaces in both directions (a new viewer connection).

A later protocol version encrypts here: ``send`` seals each payload with the header as
associated data and ``receive`` opens it, with the same sequence numbers as nonces.
"""

from __future__ import annotations

from tether.errors import RemoteProtocolError
from tether.protocol.frames import HEADER_SIZE, MAX_FRAME_BYTES, Frame
from tether.protocol.messages import Message, parse

FRAGMENT_SIZE = 256 * 1024
MAX_MESSAGE_SIZE = 32 * 1024 * 1024


class Channel:
    """Sequencing and fragmentation for one end of a connection (see module doc)."""

    def __init__(self, fragment_size: int = FRAGMENT_SIZE, max_message_size: int = MAX_MESSAGE_SIZE) -> None:
        if not 1 <= fragment_size <= MAX_FRAME_BYTES - HEADER_SIZE:
            raise ValueError(
                f"fragment_size must be 1 to {MAX_FRAME_BYTES - HEADER_SIZE}, the payload of the largest frame"
            )
        self.fragment_size = fragment_size
        self.max_message_size = max_message_size
        self.reset()

    def reset(self) -> None:
        """Start new sequence spaces: the next frame sent and expected are both seq 1."""
        self.next_send_seq = 1
        self.next_recv_seq = 1
        self._partial: list[bytes] = []
        self._partial_size = 0

    def send(self, message: Message) -> list[bytes]:
        """Frames carrying ``message``; the caller must send all of them, in order."""
        return self.send_payload(message.serialize())

    def send_payload(self, payload: bytes) -> list[bytes]:
        """Frames carrying an already serialized message (``Message.serialize()``)."""
        size = self.fragment_size
        pieces = [payload[i : i + size] for i in range(0, len(payload), size)] or [b""]
        frames = []
        for index, piece in enumerate(pieces):
            more = index < len(pieces) - 1
            frames.append(Frame(seq=self.next_send_seq, payload=piece, more=more).serialize())
            self.next_send_seq += 1
        return frames

    def receive(self, data: bytes) -> Message | None:
        """Feed one received frame; the completed message, or None (see module doc)."""
        frame = Frame.parse(data)
        if frame.seq != self.next_recv_seq:
            raise RemoteProtocolError(f"expected frame {self.next_recv_seq}, got {frame.seq}")
        if self._partial_size + len(frame.payload) > self.max_message_size:
            self._partial, self._partial_size = [], 0
            self.next_recv_seq += 1
            raise RemoteProtocolError(f"message larger than {self.max_message_size} bytes")
        self.next_recv_seq += 1
        self._partial.append(frame.payload)
        self._partial_size += len(frame.payload)
        if frame.more:
            return None
        payload = b"".join(self._partial)
        self._partial, self._partial_size = [], 0
        return parse(payload)
