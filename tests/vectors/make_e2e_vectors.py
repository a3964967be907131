"""Write tests/vectors/e2e.json: known answers of the end-to-end crypto (docs/e2e.md).

Run once, commit the output, and never regenerate it to make a test pass: the vectors pin
the Python (tether/protocol/crypto.py) and the JavaScript (viewer/static/e2e.js) sides to
docs/e2e.md and to each other. Every value is computed here straight from the spec with
`cryptography`'s primitives, then cross-checked against tether's own implementation.

    .venv/bin/python tests/vectors/make_e2e_vectors.py
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tether.protocol import crypto
from tether.protocol.frames import Frame

OUT = Path(__file__).with_name("e2e.json")

# Points of small order: X25519 with any of them gives the all-zero secret, which both sides refuse.
LOW_ORDER_POINTS = [
    "0000000000000000000000000000000000000000000000000000000000000000",  # u = 0
    "0100000000000000000000000000000000000000000000000000000000000000",  # u = 1
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",  # order 8
]


def fixed(label: str) -> bytes:
    """32 reproducible bytes named by ``label``."""
    return hashlib.sha256(f"tether e2e vectors: {label}".encode()).digest()


def hkdf(shared: bytes, salt: bytes, label: bytes, t: bytes, length: int = 32) -> bytes:
    return HKDF(hashes.SHA256(), length, salt, label + b"\x00" + t).derive(shared)


def code_of(shared: bytes, salt: bytes, t: bytes) -> str:
    return f"{int.from_bytes(hkdf(shared, salt, b'pairing code', t, 8), 'big') % 1_000_000:06d}"


def public_of(private: bytes) -> bytes:
    key = X25519PrivateKey.from_private_bytes(private).public_key()
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def x25519(private: bytes, public: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(private).exchange(X25519PublicKey.from_public_bytes(public))


def handshake(name: str, session_id: str, secret: bytes, viewer_private: bytes, host_private: bytes) -> dict[str, Any]:
    """One handshake and its frames, computed from the spec and checked against tether.protocol.crypto."""
    viewer_public, host_public = public_of(viewer_private), public_of(host_private)
    shared = x25519(viewer_private, host_public)
    assert shared == x25519(host_private, viewer_public)
    sid = session_id.encode()
    t = b"tether-e2e-v1" + struct.pack(">H", len(sid)) + sid + viewer_public + host_public
    keys = {
        "viewer_to_host": hkdf(shared, secret, b"viewer to host", t),
        "host_to_viewer": hkdf(shared, secret, b"host to viewer", t),
    }
    confirm_key = hkdf(shared, secret, b"confirm", t)
    confirm = hmac.new(confirm_key, t, hashlib.sha256).digest()
    b64 = crypto.b64url
    case: dict[str, Any] = {
        "name": name,
        "session_id": session_id,
        "pairing_secret": secret.hex(),
        "viewer_private": viewer_private.hex(),
        "host_private": host_private.hex(),
        "viewer_public": viewer_public.hex(),
        "host_public": host_public.hex(),
        "shared_secret": shared.hex(),
        "transcript": t.hex(),
        "viewer_to_host_key": keys["viewer_to_host"].hex(),
        "host_to_viewer_key": keys["host_to_viewer"].hex(),
        "confirm_key": confirm_key.hex(),
        "confirm": confirm.hex(),
        "resume_secret": hkdf(shared, secret, b"resume", t).hex(),
        "pairing_code": code_of(shared, secret, t),
        "key_offer": json.dumps({"kind": "key_offer", "public_key": b64(viewer_public)}, separators=(",", ":")),
        "key_reply": json.dumps(
            {"kind": "key_reply", "public_key": b64(host_public), "confirm": b64(confirm)}, separators=(",", ":")
        ),
        "frames": [],
    }
    samples = [
        ("viewer_to_host", 2, False, b'{"kind":"hello","client":"vectors"}'),
        ("viewer_to_host", 3, True, '{"kind":"prompt","text":"héllo ✓ '.encode()),
        ("viewer_to_host", 4, False, b""),
        ("host_to_viewer", 2, False, b'{"kind":"turn","running":true,"stop_reason":null}'),
        ("host_to_viewer", 2**40 + 7, False, b'{"kind":"ended","reason":"bye"}'),
    ]
    for direction, seq, more, plaintext in samples:
        header = Frame(seq=seq, payload=b"", more=more).header()
        nonce = bytes(4) + struct.pack(">Q", seq)
        aad = header + sid
        case["frames"].append(
            {
                "direction": direction,
                "seq": seq,
                "header": header.hex(),
                "nonce": nonce.hex(),
                "associated_data": aad.hex(),
                "plaintext": plaintext.hex(),
                "ciphertext": AESGCM(keys[direction]).encrypt(nonce, plaintext, aad).hex(),
            }
        )
    cross_check(case)
    return case


def cross_check(case: dict[str, Any]) -> None:
    """tether's implementation gives the same answers (else the spec and the code disagree)."""
    secret, sid = bytes.fromhex(case["pairing_secret"]), case["session_id"]
    viewer = crypto.ViewerHandshake(sid, secret, lambda n: bytes.fromhex(case["viewer_private"]))
    host = crypto.HostHandshake(sid, secret, lambda n: bytes.fromhex(case["host_private"]))
    offer = viewer.offer()
    assert case["key_offer"].encode() == offer.serialize()
    reply, host_keys = host.receive(offer)
    assert case["key_reply"].encode() == reply.serialize()
    viewer_keys = viewer.receive(reply)
    for keys in (viewer_keys, host_keys):
        assert case["pairing_code"] == keys.pairing_code
        assert bytes.fromhex(case["resume_secret"]) == keys.resume_secret
    for frame in case["frames"]:
        key = bytes.fromhex(case[f"{frame['direction']}_key"])
        sealer = crypto.Sealer(key, sid, next_seq=frame["seq"])
        sealed = sealer.seal(bytes.fromhex(frame["header"]), bytes.fromhex(frame["plaintext"]))
        assert frame["ciphertext"] == sealed.hex()


def leading_zero_secret() -> bytes:
    """The first fixed pairing secret whose code starts with 0, to pin the zero padding."""
    sid = "vectors-leading-zero"
    viewer, host = fixed("viewer private 3"), fixed("host private 3")
    shared = x25519(viewer, public_of(host))
    t = b"tether-e2e-v1" + struct.pack(">H", len(sid)) + sid.encode() + public_of(viewer) + public_of(host)
    index = 0
    while not code_of(shared, fixed(f"pairing secret 3/{index}"), t).startswith("0"):
        index += 1
    return fixed(f"pairing secret 3/{index}")


def main() -> None:
    vectors = {
        "about": "Known answers of tether's end-to-end crypto (docs/e2e.md); made by make_e2e_vectors.py.",
        "encoding": "bytes as lowercase hex; key_offer and key_reply as their exact JSON payload text",
        "first_sealed_seq": crypto.FIRST_SEALED_SEQ,
        "handshakes": [
            handshake(name, sid, secret, fixed(f"viewer private {n}"), fixed(f"host private {n}"))
            for n, name, sid, secret in [
                (1, "basic", "AAAAAAAAAAAAAAAAAAAAAA", fixed("pairing secret 1")),
                (2, "another session", "Zm9vYmFyLWJhei1xdXV4LXNlc3Npb24", fixed("pairing secret 2")),
                (3, "code with a leading zero", "vectors-leading-zero", leading_zero_secret()),
            ]
        ],
        "low_order_public_keys": LOW_ORDER_POINTS,
    }
    OUT.write_text(json.dumps(vectors, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
