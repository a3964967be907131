// This browser's device key and its signatures (docs/protocol.md section 5), with WebCrypto only:
// the JS twin of tether/protocol/signing.py.
//
// The key is an Ed25519 key pair made once per browser profile and origin, with a
// non-extractable private half kept in IndexedDB (a CryptoKey is stored as is; its bytes
// never reach JavaScript). The host remembers its public half when the developer pairs the
// device at the terminal, and admits it again later without asking.
//
//   proof     = Ed25519("tether-device-v1" | 0x00 | T)            T: the handshake transcript
//   approval  = Ed25519("tether-approval-v1" | 0x00 | u16 sid | sid | u16 id | id | digest
//                       | u16 option | option | u64 expires_ms)
//   digest    = SHA-256(canonical JSON of {approval: entry minus state/outcome/decided_by,
//                                          tool_call: entry minus status, or null})

import { concat, toBase64url } from "./e2e.js";

const DB = "tether";
const STORE = "device";
const KEY = "key";
const encoder = new TextEncoder();
const MUTABLE_APPROVAL = new Set(["state", "outcome", "decided_by"]);
const MUTABLE_TOOL_CALL = new Set(["status"]);
export const APPROVAL_LIFETIME_MS = 110_000; // the host allows 120 s (plus clock skew)

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function database() {
  const open = indexedDB.open(DB, 1);
  open.onupgradeneeded = () => open.result.createObjectStore(STORE);
  return request(open);
}

/** A short description of this browser for the terminal's question ("Chrome on Android"). */
export function deviceName() {
  const ua = navigator.userAgent;
  const browser = /Edg\//.test(ua) ? "Edge" : /Firefox\//.test(ua) ? "Firefox"
    : /Chrome\//.test(ua) ? "Chrome" : /Safari\//.test(ua) ? "Safari" : "A browser";
  const system = /Android/.test(ua) ? "Android" : /iPhone|iPad/.test(ua) ? "iOS" : /Mac OS X/.test(ua) ? "macOS"
    : /Windows/.test(ua) ? "Windows" : /Linux/.test(ua) ? "Linux" : "an unknown system";
  return `${browser} on ${system}`;
}

/** This browser's device key: {privateKey, publicKey (raw bytes), id}; made and stored on first use. */
export async function deviceKey() {
  const db = await database();
  try {
    const read = db.transaction(STORE, "readonly").objectStore(STORE).get(KEY);
    let stored = await request(read);
    if (!stored) {
      const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
      const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
      stored = { privateKey: pair.privateKey, publicKey: raw };
      await request(db.transaction(STORE, "readwrite").objectStore(STORE).put(stored, KEY));
    }
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", stored.publicKey));
    return { ...stored, id: toBase64url(digest.slice(0, 9)) };
  } finally {
    db.close();
  }
}

function u16(bytes) {
  if (bytes.length > 0xffff) throw new RangeError("a signed field is longer than 65535 bytes");
  return concat(new Uint8Array([bytes.length >> 8, bytes.length & 0xff]), bytes);
}

/** JSON.stringify with object keys sorted at every level, as Python's sort_keys writes it. */
export function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).filter((k) => value[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

function without(entry, fields) {
  return Object.fromEntries(Object.entries(entry).filter(([k]) => !fields.has(k)));
}

/** SHA-256 of what this page showed for an approval (its entry and the tool call it is about). */
export async function approvalDigest(approval, toolCall) {
  const shown = {
    approval: without(approval, MUTABLE_APPROVAL),
    tool_call: toolCall ? without(toolCall, MUTABLE_TOOL_CALL) : null,
  };
  return new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(canonical(shown))));
}

/** The `device` field of hello: this key, a name, and its signature over the connection's transcript. */
export async function deviceClaim(key, transcript) {
  const proof = concat(encoder.encode("tether-device-v1\0"), transcript);
  const signature = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, key.privateKey, proof));
  return { public_key: toBase64url(key.publicKey), name: deviceName(), proof: toBase64url(signature) };
}

/** {signature, expires} for a decision on `approval` (its entry as shown) with `optionId`. */
export async function signDecision(key, sessionId, approval, toolCall, optionId, now = Date.now()) {
  const expires = now + APPROVAL_LIFETIME_MS;
  const expiresBytes = new Uint8Array(8);
  new DataView(expiresBytes.buffer).setBigUint64(0, BigInt(expires), false);
  const message = concat(
    encoder.encode("tether-approval-v1\0"),
    u16(encoder.encode(sessionId)),
    u16(encoder.encode(approval.id)),
    await approvalDigest(approval, toolCall),
    u16(encoder.encode(optionId)),
    expiresBytes,
  );
  const signature = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, key.privateKey, message));
  return { signature: toBase64url(signature), expires };
}
