// Frames and channel of docs/protocol.md section 2, without I/O (the JS twin of
// tether/protocol/frames.py and channel.py).
//
//   0  1  version   protocol version, 1
//   1  1  flags     bit 0 MORE: further fragments of the same message follow
//   2  8  seq       uint64 big-endian, per direction, first frame is 1
//   10 n  payload   a fragment of one message (UTF-8 JSON)
//
// Calling contract: `channel.send(message)` returns the frames (ArrayBuffers) to write,
// in order; write all of them. `channel.receive(data)` takes one binary WebSocket message
// and returns the completed message object, or null while fragments are missing. A bad
// frame throws FrameError and leaves the channel as it was (drop it, count it, go on).
// A later protocol version seals payloads here, with the header as associated data.

export const VERSION = 1;
export const FLAG_MORE = 0x01;
export const HEADER_SIZE = 10;
export const FRAGMENT_SIZE = 256 * 1024;
export const MAX_MESSAGE_SIZE = 32 * 1024 * 1024;
const MAX_SEQ = 2n ** 64n - 1n;

export class FrameError extends Error {}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** One frame as bytes: the 10-byte header followed by `payload` (a Uint8Array). */
export function encodeFrame(seq, payload, more = false) {
  const seqBig = BigInt(seq);
  if (seqBig < 1n || seqBig > MAX_SEQ) throw new FrameError(`sequence number ${seq} out of range`);
  const bytes = new Uint8Array(HEADER_SIZE + payload.length);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, VERSION);
  view.setUint8(1, more ? FLAG_MORE : 0);
  view.setBigUint64(2, seqBig, false);
  bytes.set(payload, HEADER_SIZE);
  return bytes.buffer;
}

/** Parse one binary message (ArrayBuffer or view) into {version, more, seq, payload}. */
export function decodeFrame(data) {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  if (bytes.length < HEADER_SIZE) throw new FrameError(`frame of ${bytes.length} bytes is shorter than its header`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint8(0);
  const flags = view.getUint8(1);
  const seq = view.getBigUint64(2, false);
  if (version !== VERSION) throw new FrameError(`unsupported frame version ${version}`);
  if (flags & ~FLAG_MORE) throw new FrameError(`unknown frame flags ${flags}`);
  if (seq < 1n) throw new FrameError("sequence number 0 out of range");
  return { version, more: Boolean(flags & FLAG_MORE), seq, payload: bytes.subarray(HEADER_SIZE) };
}

/** Sequencing and fragmentation for one end of one connection (see the top of the file). */
export class Channel {
  constructor({ fragmentSize = FRAGMENT_SIZE, maxMessageSize = MAX_MESSAGE_SIZE } = {}) {
    this.fragmentSize = fragmentSize;
    this.maxMessageSize = maxMessageSize;
    this.reset();
  }

  /** New sequence spaces in both directions: the next frame sent and expected are seq 1. */
  reset() {
    this.nextSendSeq = 1n;
    this.nextRecvSeq = 1n;
    this.partial = [];
    this.partialSize = 0;
  }

  send(message) {
    const payload = encoder.encode(JSON.stringify(message));
    const frames = [];
    let offset = 0;
    do {
      const piece = payload.subarray(offset, offset + this.fragmentSize);
      offset += piece.length;
      frames.push(encodeFrame(this.nextSendSeq, piece, offset < payload.length));
      this.nextSendSeq += 1n;
    } while (offset < payload.length);
    return frames;
  }

  receive(data) {
    const frame = decodeFrame(data);
    if (frame.seq !== this.nextRecvSeq) throw new FrameError(`expected frame ${this.nextRecvSeq}, got ${frame.seq}`);
    this.nextRecvSeq += 1n;
    if (this.partialSize + frame.payload.length > this.maxMessageSize) {
      this.partial = [];
      this.partialSize = 0;
      throw new FrameError(`message larger than ${this.maxMessageSize} bytes`);
    }
    // Copy: the payload is a view into a buffer the caller may reuse.
    this.partial.push(frame.payload.slice());
    this.partialSize += frame.payload.length;
    if (frame.more) return null;
    const whole = new Uint8Array(this.partialSize);
    let at = 0;
    for (const piece of this.partial) {
      whole.set(piece, at);
      at += piece.length;
    }
    this.partial = [];
    this.partialSize = 0;
    return parseMessage(whole);
  }
}

/** A reassembled payload as a message object; FrameError unless it is an object with a kind. */
export function parseMessage(bytes) {
  let message;
  try {
    message = JSON.parse(decoder.decode(bytes));
  } catch (error) {
    throw new FrameError(`payload is not UTF-8 JSON: ${error.message}`);
  }
  if (message === null || typeof message !== "object" || Array.isArray(message) || typeof message.kind !== "string") {
    throw new FrameError("payload is not an object with a kind");
  }
  return message;
}
