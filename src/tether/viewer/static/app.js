// The tether viewer: one session's transcript, prompts, approvals, stop, agent modes and
// login, over the relay's WebSocket (docs/protocol.md). Plain ES module, no build step.

import { deviceClaim, deviceKey, signDecision } from "./device.js";
import { checkSupport, fromBase64url, toBase64url, ViewerHandshake } from "./e2e.js";
import { Channel, FrameError } from "./frames.js";
import { appendText, h, observe, renderControls, renderEntry, setRoot } from "./render.js";
import { showLive } from "./sessions.js";
import { refused, showAllowed, timeLeft } from "./queue.js";

// The fragment carries the secrets (DESIGN.md, "Session URL"): browsers never send it to a
// server, and it leaves the address bar (and history) before anything else. `j` is the
// viewer-join credential the relay asks for (docs/protocol.md, "Credentials"); `k` the
// pairing secret, the salt of the end-to-end handshake (docs/protocol.md section 2), which
// works once. What this tab needs to come back after a reload or a dropped connection (the
// join credential and the resume secret of its last admitted connection) stays in this
// tab's sessionStorage, never sent anywhere.
const fragment = new URLSearchParams(location.hash.slice(1));
if (location.hash) history.replaceState(history.state, "", location.pathname + location.search);

const CLIENT = "tether-web/1";
const OUTPUT_KEPT = 64 * 1024; // characters of command output kept per terminal, as the host does
const SESSION_ID_RE = /^[A-Za-z0-9_-]{16,64}$/;

const $ = (testid) => document.querySelector(`[data-testid="${testid}"]`);
const ui = {
  scroller: document.getElementById("scroller"),
  entries: document.getElementById("entries"),
  controls: document.getElementById("controls"),
  notice: document.getElementById("notice"),
  title: document.getElementById("title"),
  subtitle: document.getElementById("subtitle"),
  status: $("connection-status"),
  working: $("working"),
  input: $("prompt-input"),
  send: $("prompt-send"),
  stop: $("stop"),
  pairing: document.getElementById("pairing"),
  attach: $("attach"),
  attachInput: $("attach-input"),
  attached: document.getElementById("attached"),
  pairingCode: $("pairing-code"),
};

const state = {
  entries: new Map(), // id -> {entry, el}, in order of first appearance
  decisionsSent: new Set(), // approval ids answered from here, still pending
  running: false,
  stopping: false,
  connected: false,
  ended: false,
  // What this page may still have to send (issue 10): prompts the host has not listed as received
  // ({id, message, sent}: sent false while typed offline), and approvals answered here that still wait.
  outgoing: [],
  decided: new Map(), // approval id -> option id
  at: null, // the n of the newest transcript message applied, in the host run `run` (hello.since)
  run: null,
  outageWindow: 600, // seconds the host may be away (session.outage_window): the countdown while reconnecting
  drops: 0,
  renewal: 0,
};

let socket = null;
let channel = null;
let keys = null; // this connection's end-to-end keys, once the handshake is done
let admitted = false; // the host admitted this device (its snapshot came)
let device = null; // this browser's device key (device.js)
let inbound = Promise.resolve(); // frames are opened one after the other, in order
let outbound = Promise.resolve(); // and sealed and sent in order

const sessionId = sessionFromPath(location.pathname).id;
const savedKey = `tether:${sessionId}`;
const saved = (() => {
  try {
    return JSON.parse(sessionStorage.getItem(savedKey) ?? "{}") ?? {};
  } catch {
    return {};
  }
})();
const joinToken = fragment.get("j") ?? saved.join ?? "";
const pairingSecret = fragment.get("k");
if (joinToken) saved.join = joinToken;
if (pairingSecret) delete saved.resume; // a new link: pair (or be recognized) afresh
function save() {
  sessionStorage.setItem(savedKey, JSON.stringify(saved));
}

// ---- connection ---------------------------------------------------------------

function sessionFromPath(path) {
  const at = path.lastIndexOf("/s/");
  return at < 0 ? { prefix: "", id: "" } : { prefix: path.slice(0, at), id: path.slice(at + 3) };
}

function socketUrl() {
  const { prefix, id } = sessionFromPath(location.pathname);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${prefix}/v1/viewer/${id}${takingOver ? "?takeover=1" : ""}`;
}

// One controlling device (docs/protocol.md, "Taking over"): a page refused 4409 (busy) or closed 4410
// (replaced) says so and offers a button that connects asking the relay to replace the device in control;
// the computer then asks at its terminal (the device just replaced takes control back without a question).
let takingOver = false; // until the relay attached this page (its credentials came)

function offerTakeOver(reason, text, label) {
  end(reason, text);
  const button = h("button", { type: "button", class: "btn primary", "data-testid": "take-over" }, label);
  button.addEventListener("click", () => {
    button.disabled = true;
    state.ended = false;
    takingOver = true;
    retry.useRouting = false; // the seat's routing credential is the other device's now: the link's own
    showNotice("Asking the computer to let this browser take over…");
    updateControls();
    connect();
  });
  ui.notice.append(button);
}

async function resumeId(secret) {
  const label = new TextEncoder().encode("tether-resume-id\0");
  const data = new Uint8Array(label.length + secret.length);
  data.set(label);
  data.set(secret, label.length);
  return toBase64url(new Uint8Array(await crypto.subtle.digest("SHA-256", data)).slice(0, 12));
}

async function connect() {
  if (!retry.lostAt) setStatus("connecting"); // coming back, the countdown stays in view
  const problem = await checkSupport();
  if (problem) return end("cannot encrypt", `This page cannot connect end to end: ${problem}.`);
  let salt;
  let resume;
  try {
    device = device ?? (await deviceKey());
    if (saved.resume) {
      salt = fromBase64url(saved.resume.secret, 32, "the resume secret");
      resume = saved.resume.id;
    } else if (pairingSecret) {
      salt = fromBase64url(pairingSecret, 32, "the pairing secret");
    }
  } catch (error) {
    return end("cannot connect", `This page cannot connect: ${error.message}.`);
  }
  if (!salt) return end("no link", "This link has no pairing secret. Open the link shown on the computer.");
  const handshake = await ViewerHandshake.start(sessionId, salt);
  channel = new Channel(); // each connection starts new sequence spaces (protocol.md section 2)
  keys = null;
  admitted = false;
  // Coming back, the newest routing credential (the join one lasts 10 minutes); else the link's.
  const usedToken = retry.useRouting && saved.routing ? saved.routing : joinToken;
  retry.triedRouting = usedToken !== joinToken;
  const ws = new WebSocket(socketUrl());
  ws.binaryType = "arraybuffer";
  socket = ws;
  // A browser cannot send WebSocket pings: the page pings the relay itself, and a connection that
  // has said nothing (not even a pong) for SILENT ms is dead, however open it looks (a half-open link
  // after a network change or sleep): dropped, and the page reconnects.
  let heard = Date.now();
  const beat = setInterval(() => {
    if (socket !== ws) return clearInterval(beat);
    if (Date.now() - heard > SILENT) {
      clearInterval(beat);
      drop(ws, "no answer from the relay");
    } else if (ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ type: "ping" }));
    }
  }, PING_EVERY);
  ws.addEventListener("open", () => {
    // The relay admits this connection only with the session's credential, sent first; the
    // host hears from this page first the key offer, in the clear (its only plaintext frame).
    ws.send(JSON.stringify({ type: "join", token: usedToken }));
    const offer = handshake.offer();
    for (const frame of channel.send(resume ? { ...offer, resume } : offer)) ws.send(frame);
    state.connected = true;
    if (!retry.lostAt) setStatus("securing");
  });
  ws.addEventListener("message", (event) => {
    heard = Date.now();
    if (typeof event.data === "string") return onControl(event.data);
    inbound = inbound.then(() => (ws === socket ? onFrame(event.data, handshake) : undefined));
  });
  ws.addEventListener("close", (event) => {
    clearInterval(beat);
    if (socket !== ws) return;
    socket = null;
    state.connected = false;
    onClose(event.code, event.reason);
  });
}

const PING_EVERY = 5_000; // ms between the page's pings to the relay (docs/protocol.md, relay control messages)
const SILENT = 12_000; // ms without a word from the relay after which the connection counts as dead

/** Give up on ``ws`` now (its close may never come on a dead link) and go on as if it had closed. */
function drop(ws, why) {
  if (socket !== ws) return;
  socket = null;
  state.connected = false;
  try {
    ws.close();
  } catch {
    // closing a socket that never opened: nothing to do
  }
  onClose(1006, why);
}

function send(message) {
  if (!socket || socket.readyState !== WebSocket.OPEN || !keys) return false;
  const ws = socket;
  const sealed = channel.send(message).map((frame) => keys.sealer.sealFrame(frame));
  outbound = outbound.then(async () => {
    for (const frame of sealed) {
      const bytes = await frame;
      if (ws.readyState === WebSocket.OPEN) ws.send(bytes);
    }
  });
  return true;
}

function onControl(text) {
  let control;
  try {
    control = JSON.parse(text);
  } catch {
    return console.warn("relay sent a malformed control message");
  }
  if (control?.type === "error") console.warn("relay refused a frame:", control.reason, control.detail ?? "");
  if (control?.type === "credentials") takingOver = false; // attached: a later reconnection takes over nothing
  if (control?.type === "credentials" && typeof control.routing === "string") {
    // This end's newest routing credential: what it presents to come back after a drop.
    saved.routing = control.routing;
    save();
  }
  if (control?.type === "credentials" && typeof control.expires_in === "number") {
    // Renew the routing credential in-band at half its lifetime; the relay fences the old one.
    clearTimeout(state.renewal);
    const ws = socket;
    state.renewal = setTimeout(() => {
      if (ws && ws === socket && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "renew" }));
    }, Math.max(1, control.expires_in * 500));
  }
  // {"type":"peer","role":"host",...}: a host that leaves ends the session (close 4000).
}

async function onFrame(data, handshake) {
  if (!keys) return onHandshake(data, handshake);
  let message;
  try {
    message = channel.receive(await keys.opener.openFrame(data));
  } catch (error) {
    if (!(error instanceof FrameError)) throw error;
    state.drops += 1;
    return console.warn("dropped a frame:", error.message);
  }
  if (!message) return;
  // A transcript message before this connection's snapshot or replay is in that snapshot or replay already.
  if (!admitted && typeof message.n === "number") return;
  if (!fresh(message)) return;
  keepScroll(() => apply(message));
  if (message.kind !== "replay") observe(message); // render.js: what spans entries (turn ends, stops, the approval queue)
  if ((message.kind === "snapshot" || message.kind === "replay") && !admitted) onAdmitted(message);
}

// A numbered transcript message at or below what this page applied is one it has (docs/protocol.md, "Coming back").
function fresh(message) {
  if (typeof message.n !== "number") return true;
  if (state.at !== null && message.n <= state.at) return false;
  state.at = message.n;
  return true;
}

// The host's first frame: its key reply (or why it will not run a handshake with us).
async function onHandshake(data, handshake) {
  let reply;
  try {
    reply = channel.receive(data);
    if (reply?.kind === "key_refused") {
      delete saved.resume;
      save();
      return end("not admitted", `The computer did not admit this browser: ${reply.reason ?? "no reason given"}.`);
    }
    keys = await handshake.receive(reply);
  } catch (error) {
    if (!(error instanceof FrameError)) throw error;
    return end("not secure", `The end-to-end handshake failed (${error.message}). Nothing was sent. Open a new link from the computer.`);
  }
  showPairing(keys.pairingCode);
  // Coming back with the transcript this page has: the host sends only what came after.
  const since = state.at !== null && state.run ? { since: state.at, run: state.run } : {};
  send({ kind: "hello", client: CLIENT, device: await deviceClaim(device, keys.transcript), ...since });
}

async function onAdmitted(joined) {
  admitted = true;
  retry.everAdmitted = true;
  retry.attempt = 0;
  retry.busySince = 0;
  retry.useRouting = true;
  retry.lostAt = 0;
  clearInterval(retry.ticker);
  hidePairing();
  ui.notice.hidden = true;
  setStatus("connected");
  // Once, what the host may not have: a prompt it does not list as received (it applies each id once),
  // an approval answered here that still waits after the snapshot or replay (each request is decided once).
  const received = new Set(Array.isArray(joined.received) ? joined.received : []);
  state.outgoing = state.outgoing.filter((item) => !received.has(item.id));
  for (const item of state.outgoing) item.sent = send(item.message) || item.sent;
  for (const [approvalId, optionId] of [...state.decided]) {
    state.decisionsSent.delete(approvalId);
    state.decided.delete(approvalId);
    if (state.entries.get(approvalId)?.entry?.state === "pending") actions.decide(approvalId, optionId);
  }
  updateControls();
  // Coming back later (a reload, a dropped connection) uses this connection's resume secret.
  saved.resume = { id: await resumeId(keys.resumeSecret), secret: toBase64url(keys.resumeSecret) };
  save();
}

function showPairing(code) {
  ui.pairing.hidden = false;
  ui.pairingCode.textContent = code;
}

function hidePairing() {
  ui.pairing.hidden = true;
}

function onClose(code, reason) {
  if (state.ended) return;
  admitted = false;
  if (code === 4000) return end("the host ended the session");
  if (code === 4401 && retry.triedRouting) {
    retry.useRouting = false; // the routing credential lapsed: try the link's own once
    return reconnectSoon(0);
  }
  // Our own earlier connection may still hold the slot until the relay notices it is dead; 4503: the host is
  // away and may come back within its outage window; 4404 once admitted: the host has not come back yet.
  // Busy for longer than the relay takes to notice a dead connection (10 s) is not our own: another device
  // took the seat while this page was away (it never heard its 4410).
  if (code === 4409 && retry.everAdmitted) {
    retry.busySince ||= Date.now();
    if (Date.now() - retry.busySince > BUSY_NOT_OURS) {
      retry.busySince = 0;
      return offerTakeOver("replaced", "Another device controls this session now: it took over while this browser was away.", "Take back control");
    }
  }
  if ((code === 4409 || code === 4503 || code === 4404) && retry.everAdmitted) return onDisconnected(code, reason);
  if (code === 4404) return end("unknown session", "This session does not exist (any more). Start a new one on your computer.");
  if (code === 4409) {
    return offerTakeOver("busy", "Another device controls this session: only one device at a time drives it. You can ask to take over; the computer will ask for confirmation.", "Take over");
  }
  if (code === 4410) {
    return offerTakeOver("replaced", "Another device took over this session: this browser no longer sees or drives it.", "Take back control");
  }
  if (code === 4403) return end("refused", "The computer refused this browser: it sees nothing of the session.");
  if (code === 4401) return end("not admitted", "This link does not (or no longer) admit you to the session. Ask for a new link on the computer.");
  onDisconnected(code, reason);
}

// A dropped connection comes back on its own: jittered backoff, at once when the network
// returns. The browser comes back as the device it is (its resume secret: no new question)
// with the transcript it has (hello.since): the host replays what came after, so nothing is
// lost or shown twice. The host may be away for its outage window: the status counts it down
// from when this page lost it, and past it the session is over here too (no more retries).
const retry = { attempt: 0, timer: 0, everAdmitted: false, useRouting: true, triedRouting: false, lostAt: 0, ticker: 0, busySince: 0 };
const BUSY_NOT_OURS = 15_000; // ms of 4409 after which the seat is another device's, not our own dead connection

function onDisconnected(code, reason) {
  if (!retry.everAdmitted) {
    setStatus(reason ? `disconnected (${code} ${reason})` : "disconnected");
    showNotice("Connection lost before this browser was admitted. Reload the page to try again.");
    return updateControls();
  }
  const delay = Math.min(15_000, 500 * 2 ** retry.attempt) * (0.5 + Math.random() / 2);
  retry.attempt += 1;
  if (!retry.lostAt) {
    retry.lostAt = Date.now();
    clearInterval(retry.ticker);
    retry.ticker = setInterval(countDown, 1000);
  }
  countDown();
  const waiting = state.outgoing.some((item) => !item.sent);
  showNotice(waiting ? "Reconnecting… your prompt will be sent once connected." : "Reconnecting…");
  updateControls();
  if (!state.ended) reconnectSoon(delay);
}

function countDown() {
  if (state.ended || admitted || !retry.lostAt) return clearInterval(retry.ticker);
  const left = Math.ceil((retry.lostAt + state.outageWindow * 1000 - Date.now()) / 1000);
  if (left <= 0) return end(`the host did not come back within ${duration(state.outageWindow)}`);
  setStatus(`reconnecting · ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")} left`);
}

function duration(seconds) {
  if (seconds % 60 === 0) return seconds === 60 ? "1 minute" : `${seconds / 60} minutes`;
  return seconds === 1 ? "1 second" : `${seconds} seconds`;
}

function reconnectSoon(delay) {
  clearTimeout(retry.timer);
  retry.timer = setTimeout(() => {
    if (!state.ended && !socket) connect();
  }, delay);
}

addEventListener("online", () => {
  // The network is back: dial at once, also instead of a connection attempt made while it was away.
  if (state.ended || !retry.everAdmitted) return;
  if (socket && !admitted) drop(socket, "the network changed");
  if (!socket) reconnectSoon(0);
});

// ---- messages (protocol.md section 3) ----------------------------------------------

function apply(message) {
  switch (message.kind) {
    case "replay":
      // What this page missed since its hello.since, in order: the rest of the transcript it has stays.
      showSession(message.session ?? {});
      timeLeft(message.remaining); // the replayed entries are as old as the journal's: count from the host's figure
      for (const missed of Array.isArray(message.messages) ? message.messages : []) {
        if (missed?.kind === "replay" || missed?.kind === "snapshot" || !fresh(missed)) continue;
        apply(missed);
        observe(missed);
      }
      state.at = typeof message.at === "number" ? message.at : state.at;
      setRunning(message.running === true);
      return;
    case "snapshot":
      state.at = typeof message.at === "number" ? message.at : null;
      state.run = typeof message.run === "string" ? message.run : null;
      state.entries.clear();
      ui.entries.replaceChildren();
      showControls(null);
      showAllowed(null, actions);
      showSession(message.session ?? {});
      timeLeft(message.remaining); // each pending approval's seconds left, as the host counted (queue.js)
      for (const entry of Array.isArray(message.entries) ? message.entries : []) upsert(entry);
      setRunning(message.running === true);
      return;
    case "entry":
      return upsert(message.entry);
    case "append": {
      const record = state.entries.get(message.id);
      if (record?.entry.type !== "message" || typeof message.text !== "string") return;
      record.entry.text = (record.entry.text ?? "") + message.text;
      return appendText(record.el, message.text);
    }
    case "output": {
      // New output of a command shown in a tool call (a delta; the host keeps the whole).
      const record = state.entries.get(message.id);
      if (record?.entry.type !== "tool_call" || typeof message.text !== "string") return;
      const items = Array.isArray(record.entry.content) ? record.entry.content : [];
      const item = items.find((c) => c?.type === "terminal" && c.terminal_id === message.terminal_id);
      if (!item) return;
      item.output = (typeof item.output === "string" ? item.output : "") + message.text;
      if (item.output.length > OUTPUT_KEPT) {
        item.output = item.output.slice(-OUTPUT_KEPT);
        item.truncated = true;
      }
      return upsert(record.entry);
    }
    case "turn":
      return setRunning(message.running === true);
    case "ended":
      return end(typeof message.reason === "string" && message.reason ? message.reason : "the session is over");
    case "sessions":
      return showLive(message.sessions);
    case "refused":
      // The host did not take this page's answer (too soon, or a signature it refused): answer it again.
      state.decisionsSent.delete(message.approval_id);
      state.decided.delete(message.approval_id);
      return refused(message.approval_id, message.reason, message.retry, actions);
    default:
      console.info("ignored a message of unknown kind", message.kind);
  }
}

const actions = {
  sent: (approvalId) => state.decisionsSent.has(approvalId),
  decide(approvalId, optionId) {
    // Signed by this device over exactly what this page shows for the request (device.js).
    const approval = state.entries.get(approvalId)?.entry;
    if (!approval || !admitted || !socket) return false; // its buttons are disabled while disconnected
    const toolCall = approval.tool_call_id ? state.entries.get(approval.tool_call_id)?.entry : null;
    state.decisionsSent.add(approvalId);
    // Until the host shows it decided: a connection lost meanwhile sends it once more when back, if it still waits.
    state.decided.set(approvalId, optionId);
    signDecision(device, sessionId, approval, toolCall ?? null, optionId).then(
      ({ signature, expires }) => {
        send({ kind: "decide", approval_id: approvalId, option_id: optionId, signature, expires });
      },
      (error) => {
        state.decisionsSent.delete(approvalId);
        showNotice(`This decision could not be signed: ${error.message}`);
      },
    );
    return true;
  },
  setMode: (modeId) => send({ kind: "set_mode", mode_id: modeId }),
  setOption: (optionId, value) => send({ kind: "set_option", option_id: optionId, value }),
  authenticate: (methodId) => send({ kind: "authenticate", method_id: methodId }),
  revoke: (number) => send({ kind: "revoke", number }), // end one "always allow" (queue.js, host/grants.py)
};

function upsert(entry) {
  if (!entry || typeof entry.id !== "string" || typeof entry.type !== "string") return;
  if (entry.type === "controls") return showControls(entry);
  if (entry.type === "allowed") return showAllowed(entry, actions);
  if (entry.type === "approval" && entry.state !== "pending") {
    state.decisionsSent.delete(entry.id);
    state.decided.delete(entry.id);
  }
  const el = renderEntry(entry, actions);
  const old = state.entries.get(entry.id);
  if (old?.el && el) old.el.replaceWith(el);
  else if (old?.el) old.el.remove();
  else if (el) ui.entries.append(el);
  state.entries.set(entry.id, { entry, el: el ?? (old?.el?.isConnected ? old.el : null) });
}

// The controls entry is a bar above the prompt box, not part of the transcript flow.
function showControls(entry) {
  const items = entry ? renderControls(entry, actions) : [];
  ui.controls.replaceChildren(...items);
  ui.controls.hidden = items.length === 0;
}

function showSession(session) {
  const title = typeof session.title === "string" && session.title ? session.title : "tether";
  ui.title.textContent = title;
  ui.subtitle.textContent = [session.agent, session.cwd].filter((s) => typeof s === "string" && s).join(" · ");
  if (typeof session.outage_window === "number" && session.outage_window > 0) state.outageWindow = session.outage_window;
  document.title = `${title} · tether`;
  setRoot(session.cwd);
  // Attach only what the agent takes with a prompt (its ACP prompt capabilities, sent by the host).
  const accepts = Array.isArray(session.accepts) ? session.accepts : [];
  ui.attach.hidden = accepts.length === 0;
  ui.attachInput.accept = accepts.includes("file") ? "" : "image/png,image/jpeg,image/gif,image/webp";
}

// ---- attachments (docs/protocol.md, prompt.attachments) --------------------------------

const ATTACH_MAX = 4;
const ATTACH_MAX_BYTES = 5 * 1024 * 1024; // all files of one prompt, as the host allows
const attachments = []; // {name, mime, data (base64)} for the next prompt

function toBase64(buffer) {
  const bytes = new Uint8Array(buffer);
  let text = "";
  for (let at = 0; at < bytes.length; at += 0x8000) text += String.fromCharCode(...bytes.subarray(at, at + 0x8000));
  return btoa(text);
}

async function addFiles(files) {
  for (const file of files) {
    const used = attachments.reduce((n, a) => n + a.size, 0);
    if (attachments.length >= ATTACH_MAX) return showNotice(`At most ${ATTACH_MAX} files go with one prompt.`);
    if (used + file.size > ATTACH_MAX_BYTES) return showNotice("The files of one prompt may be 5 MiB in all.");
    const data = toBase64(await file.arrayBuffer());
    attachments.push({ name: file.name, mime: file.type || "application/octet-stream", data, size: file.size });
  }
  showAttachments();
}

function showAttachments() {
  const chips = attachments.map((a, index) => {
    const remove = h("button", { type: "button", class: "chip-remove", "aria-label": `Remove ${a.name}` }, "×");
    remove.addEventListener("click", () => {
      attachments.splice(index, 1);
      showAttachments();
    });
    return h("span", { class: "chip", "data-testid": "attachment" }, `${a.name} · ${Math.ceil(a.size / 1024)} KB`, remove);
  });
  ui.attached.replaceChildren(...chips);
  ui.attached.hidden = chips.length === 0;
}

ui.attach.addEventListener("click", () => ui.attachInput.click());
ui.attachInput.addEventListener("change", () => {
  addFiles([...ui.attachInput.files]).finally(() => {
    ui.attachInput.value = "";
  });
});

function setRunning(running) {
  if (running !== state.running) state.stopping = false;
  state.running = running;
  updateControls();
}

function end(reason, notice = `Session ended: ${reason}.`) {
  state.ended = true;
  hidePairing();
  state.running = false;
  clearInterval(retry.ticker);
  clearTimeout(retry.timer);
  const named = ["unknown session", "not admitted", "cannot encrypt", "not secure", "no link", "cannot connect", "busy", "replaced", "refused"];
  setStatus(named.includes(reason) ? `ended: ${reason}` : "ended");
  // A prompt typed while the host was away never reaches it now: say so, and leave its text to copy.
  const unsent = state.outgoing.filter((item) => !item.sent).map((item) => item.message.text);
  state.outgoing = [];
  if (unsent.length) ui.input.value = unsent.join("\n\n");
  showNotice(unsent.length ? `${notice} Your prompt was not sent (the session ended); its text is left in the box.` : notice);
  if (socket) socket.close(1000);
  updateControls();
}

// ---- view ---------------------------------------------------------------------

function setStatus(text) {
  ui.status.textContent = text;
  ui.status.dataset.state = text.split(/[\s:]/, 1)[0];
}

function showNotice(text) {
  ui.notice.replaceChildren(h("p", {}, text));
  ui.notice.hidden = false;
}

// Buttons that need the host (approve, deny, log in) are disabled while it cannot be reached, and only
// those this turned off come back on (a card answered here stays disabled).
const HOST_BUTTONS = '[data-testid="approval"] .actions button, [data-testid="login-method"]';

function holdHostButtons(live) {
  for (const button of document.querySelectorAll(HOST_BUTTONS)) {
    if (!live && !button.disabled) {
      button.disabled = true;
      button.dataset.offline = "";
    } else if (live && "offline" in button.dataset) {
      button.disabled = false;
      delete button.dataset.offline;
    }
  }
}

function isLive() {
  return state.connected && !state.ended && admitted;
}

// A card drawn again while disconnected (the queue redraws on its own) is held too.
new MutationObserver(() => {
  if (!isLive()) holdHostButtons(false);
}).observe(document.getElementById("approvals") ?? document.body, { childList: true, subtree: true });

function updateControls() {
  const live = isLive();
  holdHostButtons(live);
  ui.input.disabled = state.ended;
  ui.input.placeholder = state.ended ? "Session ended" : "Message the agent…";
  ui.send.disabled = !(live || (retry.everAdmitted && !state.ended)); // while reconnecting, a prompt is queued
  ui.controls.disabled = !live;
  ui.stop.disabled = !(live && state.running && !state.stopping);
  ui.working.hidden = !(live && state.running);
  ui.working.querySelector(".working-text").textContent = state.stopping ? "Stopping…" : "Working…";
}

function atBottom() {
  const s = ui.scroller;
  return s.scrollHeight - s.scrollTop - s.clientHeight < 48;
}

function keepScroll(change) {
  const stick = atBottom();
  change();
  if (stick) ui.scroller.scrollTop = ui.scroller.scrollHeight;
}

// Each prompt carries an id of its own: sent again after a reconnection, the host runs it once.
function promptId() {
  return toBase64url(crypto.getRandomValues(new Uint8Array(12)));
}

const OUTGOING_KEPT = 16; // prompts remembered until the host lists them received

function submitPrompt() {
  const text = ui.input.value.trim();
  if ((!text && attachments.length === 0) || ui.send.disabled) return;
  const files = attachments.map(({ name, mime, data }) => ({ name, mime, data }));
  const message = { kind: "prompt", text, id: promptId(), ...(files.length ? { attachments: files } : {}) };
  const queue = !state.ended && !admitted && retry.everAdmitted; // the host is away: sent once when back
  const sent = !queue && send(message);
  if (queue || sent) state.outgoing = [...state.outgoing, { id: message.id, message, sent }].slice(-OUTGOING_KEPT);
  if (queue) showNotice("Reconnecting… your prompt will be sent once connected.");
  if (queue || sent) {
    attachments.length = 0;
    showAttachments();
    ui.input.value = "";
    autosize();
    ui.scroller.scrollTop = ui.scroller.scrollHeight; // follow the echo of the prompt
  }
}

function autosize() {
  ui.input.style.height = "auto";
  ui.input.style.height = `${Math.min(ui.input.scrollHeight, 160)}px`;
}

ui.input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    submitPrompt();
  }
});
ui.input.addEventListener("input", autosize);
ui.send.addEventListener("click", submitPrompt);
ui.stop.addEventListener("click", () => {
  if (send({ kind: "cancel" })) {
    state.stopping = true;
    updateControls();
  }
});

if (SESSION_ID_RE.test(sessionId)) connect();
else end("bad session id", "This address is not a tether session link.");
updateControls();
