"""The browser's end-to-end crypto (viewer/static/e2e.js) in real Chromium, against the Python side.

The page is the viewer page served by a real embedded relay, with its real CSP; its app
(app.js) is kept from loading so that only e2e.js runs. e2e.js is imported as an ES
module from /assets/, must reproduce every known answer of tests/vectors/e2e.json, and
must open what tether.protocol.crypto sealed and the other way round. A Chromium without
X25519 in WebCrypto fails these tests with its reason: the viewer cannot work there.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import UNIT, chromium
from tether.protocol.channel import Channel
from tether.protocol.crypto import FIRST_SEALED_SEQ, HostHandshake, KeyOffer, KeyReply, ViewerHandshake
from tether.protocol.frames import Frame
from tether.protocol.messages import Ended, Hello, Prompt, Snapshot

pytestmark = pytest.mark.browser

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "e2e.json").read_text(encoding="utf-8"))
SESSION = "ZTJlLWNyeXB0by1icm93c2VyLXRlc3Q"
SECRET = bytes(range(100, 132))

# Installed once per page: the module under test and hex helpers, on window.t.
LOAD = """async () => {
  const e2e = await import("/assets/e2e.js");
  const frames = await import("/assets/frames.js");
  const hex = (bytes) => Array.from(new Uint8Array(bytes instanceof ArrayBuffer ? bytes : bytes.buffer.slice(
    bytes.byteOffset, bytes.byteOffset + bytes.byteLength)), (b) => b.toString(16).padStart(2, "0")).join("");
  const unhex = (text) => new Uint8Array((text.match(/../g) || []).map((pair) => parseInt(pair, 16)));
  const refused = async (run) => {
    try {
      await run();
      return "accepted";
    } catch (error) {
      return error instanceof e2e.E2EError ? "E2EError" : String(error);
    }
  };
  window.t = { e2e, frames, hex, unhex, refused };
  return await e2e.checkSupport();
}"""


def offer_of(message: Any) -> KeyOffer:
    """The KeyOffer the page returned as a message object."""
    return KeyOffer.parse(json.dumps(message).encode())


@pytest.fixture
async def relay_url() -> AsyncIterator[str]:
    """An embedded relay on 127.0.0.1; it serves the viewer page and /assets/ from viewer/static."""
    from tether.relay.server import EmbeddedRelay, RelayConfig

    async with EmbeddedRelay(RelayConfig(host="127.0.0.1", port=0)) as relay:
        yield relay.url


@pytest.fixture
async def page(relay_url: str) -> AsyncIterator[Any]:
    """The viewer page of the relay (its CSP included) without app.js; fails the test on any script error."""
    async with chromium() as browser:
        context = await browser.new_context()
        context.set_default_timeout(30_000 * UNIT)
        new_page = await context.new_page()
        errors: list[str] = []
        new_page.on("pageerror", lambda error: errors.append(str(error)))
        # The viewer app is not under test here, and would try to join the session.
        await new_page.route("**/assets/app.js", lambda route: route.abort())
        response = await new_page.goto(f"{relay_url}/s/{SESSION}")
        assert response is not None
        assert "script-src 'self'" in response.headers["content-security-policy"]
        reason = await new_page.evaluate(LOAD)
        if reason is not None:
            pytest.fail(f"Chromium cannot run tether's end-to-end crypto: {reason}")
        yield new_page
        await context.close()
        assert [] == errors


async def test_browser_reproduces_every_vector(page: Any) -> None:
    """e2e.js gives every public key, message, derived key, code, resume secret and ciphertext of the vectors."""
    computed = await page.evaluate(
        """async (vectors) => {
          const { e2e, hex, unhex } = window.t;
          const out = [];
          for (const c of vectors.handshakes) {
            const secret = unhex(c.pairing_secret);
            const [sid, viewerPrivate, hostPrivate] = [c.session_id, unhex(c.viewer_private), unhex(c.host_private)];
            const viewer = await e2e.ViewerHandshake.start(sid, secret, { privateKey: viewerPrivate });
            const host = await e2e.HostHandshake.start(sid, secret, { privateKey: hostPrivate });
            const offer = viewer.offer();
            const { reply, keys: hostKeys } = await host.receive(JSON.parse(c.key_offer));
            const viewerKeys = await viewer.receive(JSON.parse(c.key_reply));
            const schedule = await e2e.keySchedule(unhex(c.shared_secret), secret, c.session_id,
              unhex(c.viewer_public), unhex(c.host_public));
            const t = e2e.transcript(c.session_id, unhex(c.viewer_public), unhex(c.host_public));
            const frames = [];
            for (const f of c.frames) {
              const key = unhex(c[`${f.direction}_key`]);
              const sealer = await e2e.Sealer.create(key, c.session_id, BigInt(f.seq));
              const opener = await e2e.Opener.create(key, c.session_id, BigInt(f.seq));
              frames.push({ ...f,
                nonce: hex(e2e.nonce(BigInt(f.seq))),
                associated_data: hex(e2e.associatedData(unhex(f.header), c.session_id)),
                ciphertext: hex(await sealer.seal(unhex(f.header), unhex(f.plaintext))),
                plaintext: hex(await opener.open(unhex(f.header), unhex(f.ciphertext))) });
            }
            out.push({ ...c,
              viewer_public: hex(viewer.publicKey), host_public: hex(host.publicKey), transcript: hex(t),
              viewer_to_host_key: hex(schedule.viewerToHost), host_to_viewer_key: hex(schedule.hostToViewer),
              confirm_key: hex(schedule.confirmKey), confirm: hex(await e2e.hostConfirmation(schedule.confirmKey, t)),
              resume_secret: hex(schedule.resumeSecret), pairing_code: schedule.pairingCode,
              key_offer: JSON.stringify(offer), key_reply: JSON.stringify(reply), frames,
              ends: [viewerKeys.pairingCode, hex(viewerKeys.resumeSecret),
                     hostKeys.pairingCode, hex(hostKeys.resumeSecret)] });
          }
          return out;
        }""",
        VECTORS,
    )
    for case, got in zip(VECTORS["handshakes"], computed, strict=True):
        ends = got.pop("ends")
        assert case == got
        assert [case["pairing_code"], case["resume_secret"]] * 2 == ends


async def test_browser_refuses_low_order_keys(page: Any) -> None:
    """Both of e2e.js's handshakes refuse every small-order public key with E2EError."""
    outcomes = await page.evaluate(
        """async (points) => {
          const { e2e, unhex, refused } = window.t;
          const out = [];
          for (const point of points) {
            const host = await e2e.HostHandshake.start("session-low-order", new Uint8Array(32));
            out.push(await refused(() => host.receive(e2e.keyOffer(unhex(point)))));
            const viewer = await e2e.ViewerHandshake.start("session-low-order", new Uint8Array(32));
            viewer.offer();
            out.push(await refused(() => viewer.receive(e2e.keyReply(unhex(point), new Uint8Array(32)))));
            out.push(host.state, viewer.state);
          }
          return out;
        }""",
        VECTORS["low_order_public_keys"],
    )
    assert ["E2EError", "E2EError", "failed", "failed"] * len(VECTORS["low_order_public_keys"]) == outcomes


async def test_browser_viewer_and_python_host_talk_both_ways(page: Any) -> None:
    """A browser viewer pairs with a Python host (same code) and each opens the other's sealed channel frames."""
    offer = await page.evaluate(
        """async ([sessionId, secret]) => {
          const { e2e, unhex } = window.t;
          window.viewer = await e2e.ViewerHandshake.start(sessionId, unhex(secret));
          return window.viewer.offer();
        }""",
        [SESSION, SECRET.hex()],
    )
    reply, host_keys = HostHandshake(SESSION, SECRET, os.urandom).receive(offer_of(offer))
    host = Channel(fragment_size=6)
    host.next_send_seq = host.next_recv_seq = FIRST_SEALED_SEQ
    to_viewer = [Snapshot(session={"title": "héllo ✓"}, entries=[{"id": "1", "type": "message"}]), Ended(reason="bye")]
    sealed = [host_keys.sealer.seal_frame(frame).hex() for message in to_viewer for frame in host.send(message)]
    result = await page.evaluate(
        """async ([reply, sealed]) => {
          const { e2e, frames, hex, unhex } = window.t;
          const keys = await window.viewer.receive(reply);
          const channel = new frames.Channel({ fragmentSize: 5 });
          channel.nextSendSeq = channel.nextRecvSeq = e2e.FIRST_SEALED_SEQ;
          const received = [];
          for (const data of sealed) {
            const message = channel.receive(await keys.opener.openFrame(unhex(data)));
            if (message !== null) received.push(message);
          }
          const out = [];
          const messages = [{ kind: "hello", client: "chromium" }, { kind: "prompt", text: "héllo ✓ from the phone" }];
          for (const message of messages) {
            for (const frame of channel.send(message)) out.push(hex(await keys.sealer.sealFrame(frame)));
          }
          return { code: keys.pairingCode, received, sealed: out };
        }""",
        [json.loads(reply.serialize()), sealed],
    )
    assert host_keys.pairing_code == result["code"]
    assert [message.to_json() for message in to_viewer] == result["received"]
    got = [host.receive(host_keys.opener.open_frame(bytes.fromhex(data))) for data in result["sealed"]]
    assert [Hello(client="chromium"), Prompt(text="héllo ✓ from the phone")] == [m for m in got if m is not None]


async def test_browser_host_and_python_viewer_talk_both_ways(page: Any) -> None:
    """A Python viewer pairs with e2e.js's host end (same code) and each opens the other's sealed frames."""
    viewer = ViewerHandshake(SESSION, SECRET, os.urandom)
    answer = await page.evaluate(
        """async ([sessionId, secret, offer, plaintexts]) => {
          const { e2e, frames, hex, unhex } = window.t;
          const host = await e2e.HostHandshake.start(sessionId, unhex(secret));
          const { reply, keys } = await host.receive(offer);
          window.hostKeys = keys;
          const sealed = [];
          for (const [index, text] of plaintexts.entries()) {
            const frame = frames.encodeFrame(e2e.FIRST_SEALED_SEQ + BigInt(index), new TextEncoder().encode(text));
            sealed.push(hex(await keys.sealer.sealFrame(frame)));
          }
          return { reply, code: keys.pairingCode, sealed };
        }""",
        [SESSION, SECRET.hex(), json.loads(viewer.offer().serialize()), ["one", "two ✓"]],
    )
    viewer_keys = viewer.receive(KeyReply.parse(json.dumps(answer["reply"]).encode()))
    assert viewer_keys.pairing_code == answer["code"]
    opened = [Frame.parse(viewer_keys.opener.open_frame(bytes.fromhex(data))).payload for data in answer["sealed"]]
    assert ["one", "two ✓"] == [payload.decode() for payload in opened]
    frame = Frame(seq=FIRST_SEALED_SEQ, payload="from python ✓".encode()).serialize()
    text = await page.evaluate(
        """async (data) => {
          const { frames, unhex } = window.t;
          const plain = frames.decodeFrame(await window.hostKeys.opener.openFrame(unhex(data)));
          return new TextDecoder().decode(plain.payload);
        }""",
        viewer_keys.sealer.seal_frame(frame).hex(),
    )
    assert "from python ✓" == text


async def test_browser_refuses_a_wrong_secret_and_tampered_frames(page: Any) -> None:
    """e2e.js fails a handshake with another secret and refuses replayed, reordered, altered, cut or moved frames."""
    offer = await page.evaluate(
        """async ([sessionId, secret]) => {
          const { e2e, unhex } = window.t;
          window.wrong = await e2e.ViewerHandshake.start(sessionId, unhex(secret));
          window.right = await e2e.ViewerHandshake.start(sessionId, unhex(secret));
          return [window.wrong.offer(), window.right.offer()];
        }""",
        [SESSION, SECRET.hex()],
    )
    wrong_reply, _ = HostHandshake(SESSION, bytes(32), os.urandom).receive(offer_of(offer[0]))
    reply, host_keys = HostHandshake(SESSION, SECRET, os.urandom).receive(offer_of(offer[1]))
    first, second = (
        host_keys.sealer.seal_frame(Frame(seq=seq, payload=text).serialize()).hex()
        for seq, text in ((FIRST_SEALED_SEQ, b"first"), (FIRST_SEALED_SEQ + 1, b"second"))
    )
    outcomes = await page.evaluate(
        """async ([wrongReply, reply, sessionId, first, second]) => {
          const { e2e, frames, unhex, refused } = window.t;
          const out = { wrongSecret: await refused(() => window.wrong.receive(wrongReply)), state: window.wrong.state };
          const keys = await window.right.receive(reply);
          const open = async (data) => {
            const plain = frames.decodeFrame(await keys.opener.openFrame(data));
            return new TextDecoder().decode(plain.payload);
          };
          const altered = (data, index) => { const bytes = unhex(data); bytes[index] ^= 1; return bytes; };
          out.reordered = await refused(() => keys.opener.openFrame(unhex(second)));
          out.headerBit = await refused(() => keys.opener.openFrame(altered(first, 1)));
          out.payloadBit = await refused(() => keys.opener.openFrame(altered(first, 12)));
          out.truncated = await refused(() => keys.opener.openFrame(unhex(first).subarray(0, 25)));
          out.short = await refused(() => keys.opener.openFrame(unhex(first).subarray(0, 4)));
          const otherKey = await e2e.Opener.create(new Uint8Array(32), sessionId);
          out.otherKey = await refused(() => otherKey.openFrame(unhex(first)));
          const moved = new e2e.Opener(keys.opener.key, sessionId + "x");
          out.otherSession = await refused(() => moved.openFrame(unhex(first)));
          out.first = await open(unhex(first));
          out.replayed = await refused(() => keys.opener.openFrame(unhex(first)));
          out.second = await open(unhex(second));
          return out;
        }""",
        [json.loads(wrong_reply.serialize()), json.loads(reply.serialize()), SESSION, first, second],
    )
    refusals = ["wrongSecret", "reordered", "headerBit", "payloadBit", "truncated", "short", "otherKey", "otherSession",
                "replayed"]  # fmt: skip
    assert {**dict.fromkeys(refusals, "E2EError"), "state": "failed", "first": "first", "second": "second"} == outcomes


# -- device.js: the device key, and signatures Python verifies ---------------------------------

TRICKY_APPROVAL = {
    "id": "approval-3", "type": "approval", "tool_call_id": "tool:c1",
    "title": "Write ünïcødé ✓ \"q\" \\ \n\t\x01 \u2028 😀",
    "kind": "edit", "source": "agent", "timeout": 300.0, "state": "pending", "outcome": None, "decided_by": None,
    "options": [{"option_id": "allow", "name": "Allow", "kind": "allow_once"}],
}  # fmt: skip
TRICKY_CALL = {
    "id": "tool:c1", "type": "tool_call", "title": "Write a.txt", "kind": "edit", "status": "pending",
    "locations": ["/p/a.txt"],
    "content": [{"type": "diff", "path": "/p/a.txt", "old_text": None, "new_text": "x\r\ny"}],
    "ratio": 0.5, "big": 12345678901234,
}  # fmt: skip


async def test_device_signatures_verify_in_python_over_the_same_digest(page: Any) -> None:
    """device.js hashes exactly what tether.protocol.signing hashes (Unicode, escapes, numbers), and its
    Ed25519 signature over an approval verifies on the host side; the key is not extractable."""
    from tether.protocol.signing import approval_digest, check_approval, unb64

    result = await page.evaluate(
        """async ([approval, call]) => {
          const device = await import("/assets/device.js");
          const key = await device.deviceKey();
          const again = await device.deviceKey();
          const digest = t.hex(await device.approvalDigest(approval, call));
          const signed = await device.signDecision(key, "SESSIONID0123456789ab", approval, call, "allow");
          let extractable = "no";
          try { await crypto.subtle.exportKey("pkcs8", key.privateKey); extractable = "yes"; } catch {}
          return { digest, signed, publicKey: t.e2e.toBase64url(key.publicKey), same: key.id === again.id,
                   extractable, id: key.id };
        }""",
        [TRICKY_APPROVAL, TRICKY_CALL],
    )
    assert approval_digest(TRICKY_APPROVAL, TRICKY_CALL).hex() == result["digest"]
    assert result["same"] and "no" == result["extractable"]  # one key per browser profile, never readable
    public_key = unb64(result["publicKey"], 32, "public key")
    signed = {"public_key": public_key, "session_id": "SESSIONID0123456789ab", "approval": TRICKY_APPROVAL,
              "tool_call": TRICKY_CALL, "signature": result["signed"]["signature"],
              "expires_ms": result["signed"]["expires"], "now": result["signed"]["expires"] / 1000 - 60}
    assert check_approval(option_id="allow", **signed) is None
    assert check_approval(option_id="deny", **signed) is not None
