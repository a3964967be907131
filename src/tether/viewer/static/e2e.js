// End-to-end channel crypto of docs/e2e.md in the browser, with WebCrypto only (the JS twin
// of tether/protocol/crypto.py; tests/vectors/e2e.json pins the two to each other).
//
//   viewer                                         host
//   key_offer {public_key: V}          ------->
//                                      <-------    key_reply {public_key: H, confirm}
//
//   shared  = X25519(v, H) = X25519(h, V)
//   T       = "tether-e2e-v1" | u16 len(session id) | session id | V | H
//   K_x     = HKDF-SHA256(ikm=shared, salt=pairing secret, info=label_x | 0x00 | T)
//   confirm = HMAC-SHA256(K_confirm, T)
//   frames  = AES-256-GCM, one key per direction, nonce 4 zero bytes | seq (u64 big-endian),
//             associated data the 10-byte frame header | session id
//
// Calling contract (no I/O here):
// - Viewer: `hs = await ViewerHandshake.start(sessionId, pairingSecret)`; send `hs.offer()`
//   as the connection's first message; `keys = await hs.receive(keyReplyMessage)`. A wrong
//   pairing secret, a tampered key or a bad confirmation rejects with E2EError and fails the
//   handshake for good: close the connection, start again with a new handshake.
// - Host (tests, tools): `hs = await HostHandshake.start(...)`; `{reply, keys} = await hs.receive(offer)`.
// - Then `await keys.sealer.sealFrame(frame)` for each outgoing frame (Channel.send output),
//   in order, and `await keys.opener.openFrame(data)` for each received one before
//   Channel.receive. A frame that does not open rejects with E2EError and changes nothing
//   (drop it, count it, go on). Calls are processed in call order, whatever the caller awaits.
// The private key never leaves WebCrypto (non-extractable), except a fixed one passed in
// by the known-answer tests. The page must be a secure context: checkSupport() says why not.

import { FrameError, HEADER_SIZE } from "./frames.js";

export const KEY_SIZE = 32;
export const TAG_SIZE = 16;
export const CODE_DIGITS = 6;
export const FIRST_SEALED_SEQ = 2n; // seq 1 each way carries the handshake message in the clear
const LABEL = "tether-e2e-v1";
const LABELS = {
  viewerToHost: "viewer to host",
  hostToViewer: "host to viewer",
  confirm: "confirm",
  resume: "resume",
  pairingCode: "pairing code",
};
// PKCS #8 wrapping of a raw X25519 private key (RFC 8410): only to import fixed test keys.
const PKCS8_X25519 = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20];

/** The peer sent something that does not verify or open: drop it (a FrameError, so callers count it). */
export class E2EError extends FrameError {}

const encoder = new TextEncoder();

function subtle() {
  if (!globalThis.isSecureContext || !globalThis.crypto?.subtle) {
    throw new Error("end-to-end encryption needs a secure context (https, or http on 127.0.0.1/localhost)");
  }
  return globalThis.crypto.subtle;
}

/** Null when this page can run the handshake, else why not, in words for the user. */
export async function checkSupport() {
  if (!globalThis.isSecureContext) {
    return "this page is not a secure context: open it over https (or http on 127.0.0.1 or localhost)";
  }
  if (!globalThis.crypto?.subtle) return "this browser has no WebCrypto (crypto.subtle)";
  try {
    await globalThis.crypto.subtle.generateKey({ name: "X25519" }, false, ["deriveBits"]);
  } catch (error) {
    return `this browser's WebCrypto has no X25519 (${error.name}): update the browser`;
  }
  return null;
}

// Bytes.

function bytesOf(data) {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  throw new TypeError("expected bytes (ArrayBuffer or a view)");
}

export function concat(...parts) {
  const arrays = parts.map(bytesOf);
  const out = new Uint8Array(arrays.reduce((size, part) => size + part.length, 0));
  let at = 0;
  for (const part of arrays) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function sized(data, size, what) {
  const bytes = bytesOf(data);
  if (bytes.length !== size) throw new RangeError(`${what} is ${size} bytes, not ${bytes.length}`);
  return bytes;
}

function sessionBytes(sessionId) {
  const bytes = encoder.encode(typeof sessionId === "string" ? sessionId : "");
  if (bytes.length < 1 || bytes.length > 0xffff) {
    throw new RangeError("a session id is 1 to 65535 bytes of UTF-8");
  }
  return bytes;
}

/** Base64url without padding, as every binary field of a message is written. */
export function toBase64url(data) {
  let binary = "";
  for (const byte of bytesOf(data)) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** The `size` bytes `text` encodes in canonical unpadded base64url, or E2EError. */
export function fromBase64url(text, size, what) {
  if (typeof text !== "string" || !/^[A-Za-z0-9_-]*$/.test(text)) throw new E2EError(`${what} is not base64url text`);
  let binary;
  try {
    binary = atob(text.replaceAll("-", "+").replaceAll("_", "/") + "=".repeat((4 - (text.length % 4)) % 4));
  } catch {
    throw new E2EError(`${what} is not base64url text`);
  }
  const bytes = Uint8Array.from(binary, (char) => char.charCodeAt(0));
  if (bytes.length !== size || toBase64url(bytes) !== text) throw new E2EError(`${what} must encode exactly ${size} bytes`);
  return bytes;
}

// The key schedule.

/** T: what the key schedule and the host's confirmation bind. */
export function transcript(sessionId, viewerPublic, hostPublic) {
  const sid = sessionBytes(sessionId);
  const length = new Uint8Array([sid.length >> 8, sid.length & 0xff]);
  return concat(encoder.encode(LABEL), length, sid, sized(viewerPublic, KEY_SIZE, "a public key"),
    sized(hostPublic, KEY_SIZE, "a public key"));
}

/** The 96-bit AES-GCM nonce of frame `seq`: 4 zero bytes, then seq as u64 big-endian. */
export function nonce(seq) {
  const bytes = new Uint8Array(12);
  new DataView(bytes.buffer).setBigUint64(4, BigInt(seq), false);
  return bytes;
}

/** What each frame's tag also covers: its 10-byte header, then the session id. */
export function associatedData(header, sessionId) {
  return concat(header, sessionBytes(sessionId));
}

/** Every value one handshake derives, as raw bytes (and the code as text), the same at both ends. */
export async function keySchedule(sharedSecret, pairingSecret, sessionId, viewerPublic, hostPublic) {
  const salt = sized(pairingSecret, KEY_SIZE, "the pairing secret");
  const t = transcript(sessionId, viewerPublic, hostPublic);
  const ikm = await subtle().importKey("raw", bytesOf(sharedSecret), "HKDF", false, ["deriveBits"]);
  const derive = async (label, size = KEY_SIZE) => {
    const info = concat(encoder.encode(label), new Uint8Array([0]), t);
    return new Uint8Array(await subtle().deriveBits({ name: "HKDF", hash: "SHA-256", salt, info }, ikm, size * 8));
  };
  const codeBytes = await derive(LABELS.pairingCode, 8);
  // 8 bytes reduced mod 10**6: the bias is negligible (as in crypto.py).
  const code = new DataView(codeBytes.buffer).getBigUint64(0, false) % 10n ** BigInt(CODE_DIGITS);
  return {
    viewerToHost: await derive(LABELS.viewerToHost),
    hostToViewer: await derive(LABELS.hostToViewer),
    confirmKey: await derive(LABELS.confirm),
    resumeSecret: await derive(LABELS.resume),
    pairingCode: code.toString().padStart(CODE_DIGITS, "0"),
  };
}

async function confirmationKey(confirmKey) {
  return subtle().importKey("raw", confirmKey, { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
}

/** The host's proof that it derived the same keys: HMAC-SHA256(K_confirm, T). */
export async function hostConfirmation(confirmKey, t) {
  return new Uint8Array(await subtle().sign("HMAC", await confirmationKey(confirmKey), t));
}

// Handshake messages (plain objects, as Channel.send takes and Channel.receive returns them).

/** viewer -> host, the connection's first message: the viewer's ephemeral public key. */
export function keyOffer(publicKey) {
  return { kind: "key_offer", public_key: toBase64url(sized(publicKey, KEY_SIZE, "a public key")) };
}

/** host -> viewer, the connection's first message: the host's ephemeral public key and confirmation. */
export function keyReply(publicKey, confirm) {
  return {
    kind: "key_reply",
    public_key: toBase64url(sized(publicKey, KEY_SIZE, "a public key")),
    confirm: toBase64url(sized(confirm, 32, "a confirmation")),
  };
}

function fieldsOf(message, kind, fields) {
  if (message === null || typeof message !== "object" || Array.isArray(message) || message.kind !== kind) {
    throw new E2EError(`expected a ${kind} message`);
  }
  const names = Object.keys(message).sort();
  const wanted = ["kind", ...fields].sort();
  if (names.length !== wanted.length || names.some((name, index) => name !== wanted[index])) {
    throw new E2EError(`${kind} needs exactly the fields ${fields.join(", ")}`);
  }
  return message;
}

/** {publicKey} of a key_offer message object; E2EError unless well formed. */
export function parseKeyOffer(message) {
  const fields = fieldsOf(message, "key_offer", ["public_key"]);
  return { publicKey: fromBase64url(fields.public_key, KEY_SIZE, "key_offer field 'public_key'") };
}

/** {publicKey, confirm} of a key_reply message object; E2EError unless well formed. */
export function parseKeyReply(message) {
  const fields = fieldsOf(message, "key_reply", ["public_key", "confirm"]);
  return {
    publicKey: fromBase64url(fields.public_key, KEY_SIZE, "key_reply field 'public_key'"),
    confirm: fromBase64url(fields.confirm, 32, "key_reply field 'confirm'"),
  };
}

// Sealing and opening frames.

function headerSeq(header) {
  return new DataView(header.buffer, header.byteOffset, header.byteLength).getBigUint64(2, false);
}

async function aesKey(rawKey, usage) {
  return subtle().importKey("raw", sized(rawKey, KEY_SIZE, "an AES-256-GCM key"), "AES-GCM", false, [usage]);
}

/** Seals the frames one end sends, in order; only the frame numbered `nextSeq` is accepted. */
export class Sealer {
  static async create(rawKey, sessionId, nextSeq = FIRST_SEALED_SEQ) {
    return new Sealer(await aesKey(rawKey, "encrypt"), sessionId, nextSeq);
  }

  constructor(key, sessionId, nextSeq = FIRST_SEALED_SEQ) {
    this.key = key;
    this.sessionId = sessionId;
    this.sid = sessionBytes(sessionId);
    this.nextSeq = BigInt(nextSeq);
  }

  /** The ciphertext (with its 16-byte tag) of `plaintext` sent under `header`. */
  async seal(header, plaintext) {
    const head = bytesOf(header).slice();
    if (head.length !== HEADER_SIZE) throw new Error(`a frame header is ${HEADER_SIZE} bytes, not ${head.length}`);
    const seq = headerSeq(head);
    if (seq !== this.nextSeq) throw new Error(`frame ${seq} sealed out of order: the next is ${this.nextSeq}`);
    // Taken before any await: a nonce is never used twice, however calls interleave.
    this.nextSeq += 1n;
    const params = { name: "AES-GCM", iv: nonce(seq), additionalData: concat(head, this.sid), tagLength: 128 };
    return new Uint8Array(await subtle().encrypt(params, this.key, bytesOf(plaintext).slice()));
  }

  /** A whole frame (header + plaintext payload, as Channel.send makes it) as sent: an ArrayBuffer. */
  async sealFrame(frame) {
    const bytes = bytesOf(frame);
    const header = bytes.slice(0, HEADER_SIZE);
    const sealed = await this.seal(header, bytes.subarray(HEADER_SIZE));
    return concat(header, sealed).buffer;
  }
}

/** Opens the frames one end receives, strictly in order; a refused frame changes nothing. */
export class Opener {
  static async create(rawKey, sessionId, nextSeq = FIRST_SEALED_SEQ) {
    return new Opener(await aesKey(rawKey, "decrypt"), sessionId, nextSeq);
  }

  constructor(key, sessionId, nextSeq = FIRST_SEALED_SEQ) {
    this.key = key;
    this.sessionId = sessionId;
    this.sid = sessionBytes(sessionId);
    this.nextSeq = BigInt(nextSeq);
    this.tail = Promise.resolve();
  }

  /** The plaintext of a frame received with `header`; rejects with E2EError if it does not open. */
  open(header, ciphertext) {
    // Copied now (the caller may reuse its buffers) and opened after every earlier call.
    const head = bytesOf(header).slice();
    const body = bytesOf(ciphertext).slice();
    const result = this.tail.then(() => this.openNow(head, body));
    this.tail = result.catch(() => {});
    return result;
  }

  async openNow(head, body) {
    if (head.length !== HEADER_SIZE) throw new E2EError(`a frame header is ${HEADER_SIZE} bytes, not ${head.length}`);
    const seq = headerSeq(head);
    if (seq !== this.nextSeq) throw new E2EError(`expected sealed frame ${this.nextSeq}, got ${seq}`);
    if (body.length < TAG_SIZE) throw new E2EError(`sealed frame ${seq} is shorter than its tag`);
    let plaintext;
    try {
      const params = { name: "AES-GCM", iv: nonce(seq), additionalData: concat(head, this.sid), tagLength: 128 };
      plaintext = await subtle().decrypt(params, this.key, body);
    } catch {
      throw new E2EError(`sealed frame ${seq} failed authentication`);
    }
    this.nextSeq += 1n;
    return new Uint8Array(plaintext);
  }

  /** A received frame as the plaintext frame (ArrayBuffer) Channel.receive takes. */
  async openFrame(data) {
    const bytes = bytesOf(data);
    const header = bytes.slice(0, HEADER_SIZE);
    const plaintext = await this.open(header, bytes.subarray(HEADER_SIZE));
    return concat(header, plaintext).buffer;
  }
}

// The handshakes.

async function ephemeral(privateKey) {
  if (privateKey === undefined) {
    const pair = await subtle().generateKey({ name: "X25519" }, false, ["deriveBits"]);
    return { privateKey: pair.privateKey, publicKey: new Uint8Array(await subtle().exportKey("raw", pair.publicKey)) };
  }
  // Known-answer tests only: a fixed private key, extractable so that its public half can be read.
  const pkcs8 = concat(new Uint8Array(PKCS8_X25519), sized(privateKey, KEY_SIZE, "a private key"));
  const key = await subtle().importKey("pkcs8", pkcs8, { name: "X25519" }, true, ["deriveBits"]);
  const jwk = await subtle().exportKey("jwk", key);
  return { privateKey: key, publicKey: fromBase64url(jwk.x, KEY_SIZE, "the public key") };
}

async function exchange(privateKey, peerPublic) {
  let shared;
  try {
    const peer = await subtle().importKey("raw", peerPublic, { name: "X25519" }, true, []);
    shared = new Uint8Array(await subtle().deriveBits({ name: "X25519", public: peer }, privateKey, 256));
  } catch {
    shared = new Uint8Array(KEY_SIZE); // WebCrypto refuses an all-zero result (a low-order point)
  }
  if (shared.every((byte) => byte === 0)) throw new E2EError("the peer's public key is not usable for X25519");
  return shared;
}

async function keysFor(schedule, sessionId, sendKey, receiveKey, t) {
  return {
    sealer: await Sealer.create(sendKey, sessionId),
    opener: await Opener.create(receiveKey, sessionId),
    pairingCode: schedule.pairingCode,
    resumeSecret: schedule.resumeSecret,
    transcript: t, // what a paired device signs to prove its key on this connection (device.js)
  };
}

class Handshake {
  constructor(sessionId, pairingSecret, key) {
    this.sessionId = sessionId;
    this.secret = pairingSecret;
    this.privateKey = key.privateKey;
    this.publicKey = key.publicKey;
    this.state = "start"; // start -> offered (viewer only) -> done, or failed for good
  }

  static async make(cls, sessionId, pairingSecret, privateKey) {
    sessionBytes(sessionId);
    const secret = sized(pairingSecret, KEY_SIZE, "the pairing secret").slice();
    return new cls(sessionId, secret, await ephemeral(privateKey));
  }
}

/** The viewer's end: `offer()` once, then `await receive(reply)` (see the top of the file). */
export class ViewerHandshake extends Handshake {
  /** A new handshake with a fresh non-extractable key (`privateKey`: raw bytes, for known-answer tests only). */
  static async start(sessionId, pairingSecret, { privateKey } = {}) {
    return Handshake.make(ViewerHandshake, sessionId, pairingSecret, privateKey);
  }

  /** The first message to send on the connection. */
  offer() {
    if (this.state !== "start") throw new Error(`offer() in state ${this.state}: a handshake offers once`);
    this.state = "offered";
    return keyOffer(this.publicKey);
  }

  /** Check the host's key_reply; the keys, or E2EError (the handshake then fails for good). */
  async receive(reply) {
    if (this.state === "start") throw new Error("receive() before offer()");
    if (this.state !== "offered") throw new E2EError(`key_reply in state ${this.state}`);
    this.state = "failed"; // until every check passed
    const { publicKey: hostPublic, confirm } = parseKeyReply(reply);
    const shared = await exchange(this.privateKey, hostPublic);
    const schedule = await keySchedule(shared, this.secret, this.sessionId, this.publicKey, hostPublic);
    const t = transcript(this.sessionId, this.publicKey, hostPublic);
    if (!(await subtle().verify("HMAC", await confirmationKey(schedule.confirmKey), confirm, t))) {
      throw new E2EError("the host's key confirmation does not match: wrong pairing secret or tampering");
    }
    const keys = await keysFor(schedule, this.sessionId, schedule.viewerToHost, schedule.hostToViewer, t);
    this.state = "done";
    return keys;
  }
}

/** The host's end, one per viewer connection: `await receive(offer)` gives {reply, keys}. */
export class HostHandshake extends Handshake {
  static async start(sessionId, pairingSecret, { privateKey } = {}) {
    return Handshake.make(HostHandshake, sessionId, pairingSecret, privateKey);
  }

  /** The key_reply to send and this end's keys; E2EError for a bad offer (fails for good). */
  async receive(offer) {
    if (this.state !== "start") throw new E2EError(`key_offer in state ${this.state}`);
    this.state = "failed"; // until every check passed
    const { publicKey: viewerPublic } = parseKeyOffer(offer);
    const shared = await exchange(this.privateKey, viewerPublic);
    const schedule = await keySchedule(shared, this.secret, this.sessionId, viewerPublic, this.publicKey);
    const t = transcript(this.sessionId, viewerPublic, this.publicKey);
    const confirm = await hostConfirmation(schedule.confirmKey, t);
    const keys = await keysFor(schedule, this.sessionId, schedule.hostToViewer, schedule.viewerToHost, t);
    this.state = "done";
    return { reply: keyReply(this.publicKey, confirm), keys };
  }
}
