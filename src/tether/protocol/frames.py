"""Frames: the unit that travels between host and viewer, opaque to the relay.

Layout (docs/protocol.md section 2)::

    0  1  version
    1  1  flags      bit 0 MORE: further fragments of the same message follow
    2  8  seq        uint64 big-endian, per direction, first frame is 1
    10 n  payload    a fragment of one message

The 10-byte header is kept separate from the payload so that a later protocol version
can use it as the associated data of the end-to-end AEAD without changing the layout.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from tether.errors import LocalProtocolError, RemoteProtocolError

VERSION = 1
FLAG_MORE = 0x01
HEADER = struct.Struct(">BBQ")
HEADER_SIZE = HEADER.size
MAX_SEQ = 2**64 - 1
MAX_FRAME_BYTES = 1024 * 1024 + 64
"""The largest frame anyone sends or accepts: a 1 MiB payload fragment plus header headroom.

Defined here once; relays close 1009 above it (``relay/config.py``), the host's WebSocket
client takes no more, and a Channel's fragments must fit in it.
"""


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame: header fields plus a payload fragment."""

    seq: int
    payload: bytes
    more: bool = False
    version: int = VERSION

    def check(self, error: type[Exception] = LocalProtocolError) -> None:
        """Raise ``error`` if a field is out of range; parse and serialize both call it."""
        if self.version != VERSION:
            raise error(f"unsupported frame version {self.version}")
        if not 1 <= self.seq <= MAX_SEQ:
            raise error(f"sequence number {self.seq} out of range")

    def header(self) -> bytes:
        """The 10 header bytes (the future AEAD associated data)."""
        return HEADER.pack(self.version, FLAG_MORE if self.more else 0, self.seq)

    def serialize(self) -> bytes:
        """Bytes to send as one binary WebSocket message."""
        self.check()
        return self.header() + self.payload

    @classmethod
    def parse(cls, data: bytes) -> Frame:
        """Decode one binary WebSocket message; raise RemoteProtocolError if malformed."""
        if len(data) < HEADER_SIZE:
            raise RemoteProtocolError(f"frame of {len(data)} bytes is shorter than its header")
        version, flags, seq = HEADER.unpack_from(data)
        if flags & ~FLAG_MORE:
            raise RemoteProtocolError(f"unknown frame flags {flags:#04x}")
        frame = cls(seq=seq, payload=bytes(data[HEADER_SIZE:]), more=bool(flags & FLAG_MORE), version=version)
        frame.check(RemoteProtocolError)
        return frame
