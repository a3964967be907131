"""End-to-end channel crypto (protocol/crypto.py, docs/e2e.md): vectors, handshake, sealing, refusals."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tether.errors import LocalProtocolError, RemoteProtocolError
from tether.protocol.channel import Channel
from tether.protocol.crypto import (
    FIRST_SEALED_SEQ,
    HostHandshake,
    KeyOffer,
    KeyReply,
    Keys,
    Opener,
    Sealer,
    State,
    ViewerHandshake,
    associated_data,
    b64url,
    key_schedule,
    nonce,
    transcript,
)
from tether.protocol.frames import Frame
from tether.protocol.messages import Ended, Hello, Prompt, Snapshot

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "e2e.json").read_text(encoding="utf-8"))
HANDSHAKES: list[dict[str, Any]] = VECTORS["handshakes"]
FRAMES = [(case, frame) for case in HANDSHAKES for frame in case["frames"]]
SESSION = "c2Vzc2lvbi1pZC1mb3ItdGVzdHM"
SECRET = bytes(range(32))


def fixed(hex_bytes: str) -> Callable[[int], bytes]:
    """A random_bytes that returns the given bytes (known-answer tests only)."""
    return lambda size: bytes.fromhex(hex_bytes)


def pair(
    viewer_secret: bytes = SECRET,
    host_secret: bytes = SECRET,
    session_id: str = SESSION,
    random_bytes: Callable[[int], bytes] = os.urandom,
) -> tuple[Keys, Keys]:
    """Run a whole handshake through serialized messages; (viewer keys, host keys)."""
    viewer = ViewerHandshake(session_id, viewer_secret, random_bytes)
    host = HostHandshake(session_id, host_secret, random_bytes)
    reply, host_keys = host.receive(KeyOffer.parse(viewer.offer().serialize()))
    return viewer.receive(KeyReply.parse(reply.serialize())), host_keys


def sealed(keys: Keys, payload: bytes = b'{"kind":"cancel"}', more: bool = False) -> bytes:
    """The next frame ``keys`` sends, sealed."""
    return keys.sealer.seal_frame(Frame(seq=keys.sealer.next_seq, payload=payload, more=more).serialize())


# Known answers.


@pytest.mark.parametrize("case", HANDSHAKES, ids=lambda case: case["name"])
def test_vectors_key_schedule(case: dict[str, Any]) -> None:
    """key_schedule gives every derived value of the vectors."""
    viewer_public, host_public = bytes.fromhex(case["viewer_public"]), bytes.fromhex(case["host_public"])
    schedule = key_schedule(
        bytes.fromhex(case["shared_secret"]),
        bytes.fromhex(case["pairing_secret"]),
        case["session_id"],
        viewer_public,
        host_public,
    )
    assert case["transcript"] == transcript(case["session_id"], viewer_public, host_public).hex()
    assert case["viewer_to_host_key"] == schedule.viewer_to_host.hex()
    assert case["host_to_viewer_key"] == schedule.host_to_viewer.hex()
    assert case["confirm_key"] == schedule.confirm_key.hex()
    assert case["resume_secret"] == schedule.resume_secret.hex()
    assert case["pairing_code"] == schedule.pairing_code


@pytest.mark.parametrize("case", HANDSHAKES, ids=lambda case: case["name"])
def test_vectors_handshake(case: dict[str, Any]) -> None:
    """Fixed private keys give the vectors' public keys, messages, code and resume secret at both ends."""
    secret = bytes.fromhex(case["pairing_secret"])
    viewer = ViewerHandshake(case["session_id"], secret, fixed(case["viewer_private"]))
    host = HostHandshake(case["session_id"], secret, fixed(case["host_private"]))
    assert (case["viewer_public"], case["host_public"]) == (viewer.public_key.hex(), host.public_key.hex())
    offer = viewer.offer()
    assert case["key_offer"].encode() == offer.serialize()
    reply, host_keys = host.receive(KeyOffer.parse(case["key_offer"].encode()))
    assert case["key_reply"].encode() == reply.serialize()
    viewer_keys = viewer.receive(KeyReply.parse(case["key_reply"].encode()))
    for keys in (viewer_keys, host_keys):
        assert (case["pairing_code"], case["resume_secret"]) == (keys.pairing_code, keys.resume_secret.hex())
    assert (State.DONE, State.DONE) == (viewer.state, host.state)


@pytest.mark.parametrize(("case", "frame"), FRAMES, ids=lambda value: str(value.get("seq", value.get("name"))))
def test_vectors_frames_seal_and_open(case: dict[str, Any], frame: dict[str, Any]) -> None:
    """Each vector frame seals to its ciphertext under its nonce and associated data, and opens back."""
    key, header = bytes.fromhex(case[f"{frame['direction']}_key"]), bytes.fromhex(frame["header"])
    assert frame["nonce"] == nonce(frame["seq"]).hex()
    assert frame["associated_data"] == associated_data(header, case["session_id"]).hex()
    sealer = Sealer(key, case["session_id"], next_seq=frame["seq"])
    assert frame["ciphertext"] == sealer.seal(header, bytes.fromhex(frame["plaintext"])).hex()
    opener = Opener(key, case["session_id"], next_seq=frame["seq"])
    assert frame["plaintext"] == opener.open(header, bytes.fromhex(frame["ciphertext"])).hex()


@pytest.mark.parametrize("point", VECTORS["low_order_public_keys"])
def test_low_order_public_keys_refused_at_both_ends(point: str) -> None:
    """A public key of small order (all-zero shared secret) fails the handshake on either side."""
    host = HostHandshake(SESSION, SECRET, os.urandom)
    with pytest.raises(RemoteProtocolError):
        host.receive(KeyOffer(public_key=b64url(bytes.fromhex(point))))
    viewer = ViewerHandshake(SESSION, SECRET, os.urandom)
    viewer.offer()
    with pytest.raises(RemoteProtocolError):
        viewer.receive(KeyReply(public_key=b64url(bytes.fromhex(point)), confirm=b64url(bytes(32))))
    assert (State.FAILED, State.FAILED) == (host.state, viewer.state)


# Round trips.


def test_channels_round_trip_sealed_messages_both_ways() -> None:
    """Channel frames sealed by one end open at the other into the same messages, fragments included."""
    viewer_keys, host_keys = pair()
    viewer, host = Channel(fragment_size=5), Channel(fragment_size=7)
    viewer.next_send_seq = host.next_recv_seq = host.next_send_seq = viewer.next_recv_seq = FIRST_SEALED_SEQ
    to_host = [Hello(client="phone"), Prompt(text="héllo ✓ " * 20)]
    to_viewer = [Snapshot(session={"title": "t"}, entries=[{"id": "1"}]), Ended(reason="bye")]
    got_by_host = [host.receive(host_keys.opener.open_frame(viewer_keys.sealer.seal_frame(frame)))
                   for message in to_host for frame in viewer.send(message)]  # fmt: skip
    got_by_viewer = [viewer.receive(viewer_keys.opener.open_frame(host_keys.sealer.seal_frame(frame)))
                     for message in to_viewer for frame in host.send(message)]  # fmt: skip
    assert to_host == [message for message in got_by_host if message is not None]
    assert to_viewer == [message for message in got_by_viewer if message is not None]


def test_sealed_payload_hides_the_plaintext() -> None:
    """A sealed frame keeps its header and carries no byte run of the plaintext, 16 bytes longer."""
    viewer_keys, _ = pair()
    frame = Frame(seq=FIRST_SEALED_SEQ, payload=b'{"kind":"prompt","text":"secret-marker"}').serialize()
    data = viewer_keys.sealer.seal_frame(frame)
    assert (frame[:10], len(frame) + 16) == (data[:10], len(data))
    assert b"secret-marker" not in data


def test_fresh_ephemeral_keys_give_different_keys_each_connection() -> None:
    """Two connections with the same secret and session derive different keys, codes aside."""
    first_viewer, first_host = pair()
    second_viewer, _ = pair()
    first_frame, second_frame = sealed(first_viewer), sealed(second_viewer)
    assert first_viewer.resume_secret != second_viewer.resume_secret
    assert first_frame != second_frame
    with pytest.raises(RemoteProtocolError, match="authentication"):
        first_host.opener.open_frame(second_frame)


def test_pairing_code_is_six_digits_equal_at_both_ends() -> None:
    """Both ends show the same 6-digit decimal code."""
    viewer_keys, host_keys = pair()
    assert re.fullmatch(r"[0-9]{6}", viewer_keys.pairing_code)
    assert viewer_keys.pairing_code == host_keys.pairing_code


def test_pairing_code_differs_for_a_different_secret() -> None:
    """The same ephemeral keys and session with another pairing secret give another code."""
    case = HANDSHAKES[0]
    shared, viewer_public, host_public = (bytes.fromhex(case[name]) for name in ("shared_secret", "viewer_public",
                                                                                 "host_public"))  # fmt: skip
    codes = {key_schedule(shared, secret, case["session_id"], viewer_public, host_public).pairing_code
             for secret in (bytes.fromhex(case["pairing_secret"]), bytes(32), SECRET)}  # fmt: skip
    assert 3 == len(codes)


# Refusals: the handshake.


def test_wrong_pairing_secret_fails_closed() -> None:
    """A host with another pairing secret cannot confirm its keys; the viewer's handshake fails for good."""
    viewer = ViewerHandshake(SESSION, SECRET, os.urandom)
    reply, _ = HostHandshake(SESSION, bytes(32), os.urandom).receive(viewer.offer())
    with pytest.raises(RemoteProtocolError, match="confirmation"):
        viewer.receive(reply)
    assert State.FAILED == viewer.state
    with pytest.raises(RemoteProtocolError):
        viewer.receive(reply)


def test_relay_replacing_the_host_key_is_refused() -> None:
    """A key_reply whose public key a relay swapped for its own fails the confirmation."""
    viewer = ViewerHandshake(SESSION, SECRET, os.urandom)
    reply, _ = HostHandshake(SESSION, SECRET, os.urandom).receive(viewer.offer())
    relay_key = HostHandshake(SESSION, SECRET, os.urandom).public_key
    with pytest.raises(RemoteProtocolError):
        viewer.receive(KeyReply(public_key=b64url(relay_key), confirm=reply.confirm))


def test_relay_replacing_the_viewer_key_is_refused() -> None:
    """A key_offer swapped by a relay gets a confirmation that does not match the viewer's own key."""
    viewer = ViewerHandshake(SESSION, SECRET, os.urandom)
    viewer.offer()
    relay_offer = ViewerHandshake(SESSION, SECRET, os.urandom).offer()
    reply, _ = HostHandshake(SESSION, SECRET, os.urandom).receive(relay_offer)
    with pytest.raises(RemoteProtocolError):
        viewer.receive(reply)


def test_handshake_for_another_session_is_refused() -> None:
    """A host answering for another session id does not confirm."""
    viewer = ViewerHandshake(SESSION, SECRET, os.urandom)
    reply, _ = HostHandshake(SESSION + "x", SECRET, os.urandom).receive(viewer.offer())
    with pytest.raises(RemoteProtocolError):
        viewer.receive(reply)


def test_handshake_calls_out_of_order() -> None:
    """Local misuse is a LocalProtocolError; a second offer or reply from the peer is a RemoteProtocolError."""
    viewer = ViewerHandshake(SESSION, SECRET, os.urandom)
    host = HostHandshake(SESSION, SECRET, os.urandom)
    with pytest.raises(LocalProtocolError):
        viewer.receive(KeyReply(public_key=b64url(host.public_key), confirm=b64url(bytes(32))))
    offer = viewer.offer()
    with pytest.raises(LocalProtocolError):
        viewer.offer()
    reply, _ = host.receive(offer)
    with pytest.raises(RemoteProtocolError):
        host.receive(offer)
    viewer.receive(reply)
    with pytest.raises(RemoteProtocolError):
        viewer.receive(reply)


def offer_of(key: str, rest: str = "") -> bytes:
    """A key_offer payload with ``key`` as its public key text."""
    return f'{{"kind":"key_offer","public_key":"{key}"{rest}}}'.encode()


@pytest.mark.parametrize(
    "payload",
    [b"", b"\xff", b"[]", b"{}", b'{"kind":"key_offer"}', b'{"kind":"key_reply","public_key":"AA"}',
     b'{"kind":"key_offer","public_key":5}', offer_of("A" * 42), offer_of("A" * 44), offer_of("A" * 42 + "B"),
     offer_of("A" * 42 + "+"), offer_of("A" * 43 + "=="), offer_of("A" * 43, ',"extra":1'), b"[" * 100_000],
)  # fmt: skip
def test_malformed_key_offers_raise_remote_protocol_error(payload: bytes) -> None:
    """Anything but a canonical key_offer is a RemoteProtocolError, never a crash."""
    with pytest.raises(RemoteProtocolError):
        KeyOffer.parse(payload)


def test_key_reply_needs_both_fields() -> None:
    """A key_reply without its confirmation, or with a short one, is refused."""
    key = b64url(bytes(32))
    for data in ({"kind": "key_reply", "public_key": key}, {"kind": "key_reply", "public_key": key, "confirm": "AA"}):
        with pytest.raises(RemoteProtocolError):
            KeyReply.parse(json.dumps(data).encode())


def test_bad_local_arguments_are_value_errors() -> None:
    """A pairing secret or key of the wrong size is the caller's bug."""
    with pytest.raises(ValueError):
        ViewerHandshake(SESSION, bytes(31), os.urandom)
    with pytest.raises(ValueError):
        HostHandshake(SESSION, SECRET, lambda size: bytes(16))
    with pytest.raises(ValueError):
        Sealer(bytes(16), SESSION)
    with pytest.raises(ValueError):
        Opener(bytes(32), "")


# Refusals: sealed frames.


def test_frame_sealed_with_another_key_is_refused() -> None:
    """A frame from another connection (another key) does not open."""
    _, host_keys = pair()
    other_viewer, _ = pair()
    with pytest.raises(RemoteProtocolError, match="authentication"):
        host_keys.opener.open_frame(sealed(other_viewer))


def test_frame_moved_to_another_session_is_refused() -> None:
    """The same key under another session id does not open a frame (the session id is associated data)."""
    case, frame = FRAMES[0]
    opener = Opener(bytes.fromhex(case[f"{frame['direction']}_key"]), case["session_id"] + "x", frame["seq"])
    with pytest.raises(RemoteProtocolError, match="authentication"):
        opener.open(bytes.fromhex(frame["header"]), bytes.fromhex(frame["ciphertext"]))


def test_replayed_frame_is_refused() -> None:
    """A frame opened once is refused the second time, and the next frame still opens."""
    viewer_keys, host_keys = pair()
    first, second = sealed(viewer_keys), sealed(viewer_keys)
    host_keys.opener.open_frame(first)
    with pytest.raises(RemoteProtocolError, match="expected sealed frame 3, got 2"):
        host_keys.opener.open_frame(first)
    assert b'{"kind":"cancel"}' == host_keys.opener.open_frame(second)[10:]


def test_reordered_frames_are_refused_and_order_recovers() -> None:
    """A frame ahead of its turn is refused without consuming anything; in order they both open."""
    viewer_keys, host_keys = pair()
    first, second = sealed(viewer_keys, b"one"), sealed(viewer_keys, b"two")
    with pytest.raises(RemoteProtocolError):
        host_keys.opener.open_frame(second)
    assert [b"one", b"two"] == [host_keys.opener.open_frame(data)[10:] for data in (first, second)]


def test_renumbered_frame_is_refused() -> None:
    """A frame whose seq a relay rewrote to the expected number does not open (the nonce and header changed)."""
    viewer_keys, host_keys = pair()
    sealed(viewer_keys)
    third = bytearray(sealed(viewer_keys))
    third[9] = FIRST_SEALED_SEQ
    with pytest.raises(RemoteProtocolError, match="authentication"):
        host_keys.opener.open_frame(bytes(third))


def test_reflected_frame_is_refused() -> None:
    """A frame sent back to its own sender does not open (one key per direction)."""
    viewer_keys, _ = pair()
    with pytest.raises(RemoteProtocolError, match="authentication"):
        viewer_keys.opener.open_frame(sealed(viewer_keys))


@pytest.mark.parametrize("bit", range(80))
def test_flipped_header_bit_is_refused(bit: int) -> None:
    """Flipping any one of the 80 header bits makes the frame fail (order or authentication)."""
    viewer_keys, host_keys = pair()
    data = bytearray(sealed(viewer_keys))
    data[bit // 8] ^= 0x80 >> (bit % 8)
    with pytest.raises(RemoteProtocolError):
        host_keys.opener.open_frame(bytes(data))
    assert FIRST_SEALED_SEQ == host_keys.opener.next_seq


def test_flipped_ciphertext_bit_is_refused() -> None:
    """Flipping a bit of the sealed payload or of its tag fails authentication."""
    viewer_keys, host_keys = pair()
    data = sealed(viewer_keys, b"payload")
    for index in (10, len(data) - 1):
        altered = bytearray(data)
        altered[index] ^= 1
        with pytest.raises(RemoteProtocolError, match="authentication"):
            host_keys.opener.open_frame(bytes(altered))
    assert b"payload" == host_keys.opener.open_frame(data)[10:]


@pytest.mark.parametrize("keep", [0, 5, 10, 11, 25, -1])
def test_truncated_frame_is_refused(keep: int) -> None:
    """A frame cut anywhere, header or tag, is refused."""
    viewer_keys, host_keys = pair()
    data = sealed(viewer_keys, b"payload")
    with pytest.raises(RemoteProtocolError):
        host_keys.opener.open_frame(data[:keep])


def test_sealer_refuses_to_reuse_or_skip_a_sequence_number() -> None:
    """Sealing a frame numbered other than next_seq is a local bug: a nonce is never reused."""
    viewer_keys, _ = pair()
    header = Frame(seq=FIRST_SEALED_SEQ, payload=b"").header()
    viewer_keys.sealer.seal(header, b"x")
    for seq in (FIRST_SEALED_SEQ, FIRST_SEALED_SEQ + 2):
        with pytest.raises(LocalProtocolError):
            viewer_keys.sealer.seal(Frame(seq=seq, payload=b"").header(), b"x")
    with pytest.raises(LocalProtocolError):
        viewer_keys.sealer.seal(b"short", b"x")
