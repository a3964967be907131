// The tether viewer: one session's transcript, prompts, approvals, stop, agent modes and
// login, over the relay's WebSocket (docs/protocol.md). Plain ES module, no build step.

import { Channel, FrameError } from "./frames.js";
import { appendText, h, observe, renderControls, renderEntry, setRoot } from "./render.js";

// The fragment carries the secrets (DESIGN.md, "Session URL"): browsers never send it to a
// server, and it leaves the address bar (and history) before anything else. `j` is the
// viewer-join credential the relay asks for (docs/protocol.md, "Credentials").
const fragment = new URLSearchParams(location.hash.slice(1));
const joinToken = fragment.get("j") ?? "";
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
};

const state = {
  entries: new Map(), // id -> {entry, el}, in order of first appearance
  decisionsSent: new Set(), // approval ids answered from here, still pending
  running: false,
  stopping: false,
  connected: false,
  ended: false,
  drops: 0,
  renewal: 0,
};

let socket = null;
let channel = null;

// ---- connection ---------------------------------------------------------------

function sessionFromPath(path) {
  const at = path.lastIndexOf("/s/");
  return at < 0 ? { prefix: "", id: "" } : { prefix: path.slice(0, at), id: path.slice(at + 3) };
}

function socketUrl() {
  const { prefix, id } = sessionFromPath(location.pathname);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${prefix}/v1/viewer/${id}`;
}

function connect() {
  setStatus("connecting");
  channel = new Channel(); // each connection starts new sequence spaces (protocol.md section 2)
  const ws = new WebSocket(socketUrl());
  ws.binaryType = "arraybuffer";
  socket = ws;
  ws.addEventListener("open", () => {
    // The relay admits this connection only with the session's credential, sent first.
    ws.send(JSON.stringify({ type: "join", token: joinToken }));
    state.connected = true;
    setStatus("connected");
    send({ kind: "hello", client: CLIENT });
  });
  ws.addEventListener("message", (event) => {
    if (typeof event.data === "string") onControl(event.data);
    else onFrame(event.data);
  });
  ws.addEventListener("close", (event) => {
    if (socket !== ws) return;
    socket = null;
    state.connected = false;
    onClose(event.code, event.reason);
  });
}

function send(message) {
  if (!socket || socket.readyState !== WebSocket.OPEN) return false;
  for (const frame of channel.send(message)) socket.send(frame);
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

function onFrame(data) {
  let message;
  try {
    message = channel.receive(data);
  } catch (error) {
    if (!(error instanceof FrameError)) throw error;
    state.drops += 1;
    return console.warn("dropped a frame:", error.message);
  }
  if (message) {
    keepScroll(() => apply(message));
    observe(message); // render.js: what spans entries (turn ends, stops, the approval queue)
  }
}

function onClose(code, reason) {
  if (state.ended) return;
  if (code === 4000) return end("the host ended the session");
  if (code === 4404) return end("unknown session", "This session does not exist (any more). Start a new one on your computer.");
  if (code === 4401) return end("not admitted", "This link does not (or no longer) admit you to the session. Ask for a new link on the computer.");
  onDisconnected(code, reason);
}

// Reconnection is a later issue; it hooks in here: show "reconnecting", back off and call
// connect() again. The snapshot the host sends for each hello replaces the transcript, so
// a rejoin neither loses nor duplicates entries.
function onDisconnected(code, reason) {
  setStatus(reason ? `disconnected (${code} ${reason})` : "disconnected");
  showNotice("Connection lost. Reload the page to connect again.");
  updateControls();
}

// ---- messages (protocol.md section 3) ----------------------------------------------

function apply(message) {
  switch (message.kind) {
    case "snapshot":
      state.entries.clear();
      ui.entries.replaceChildren();
      showControls(null);
      showSession(message.session ?? {});
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
    default:
      console.info("ignored a message of unknown kind", message.kind);
  }
}

const actions = {
  sent: (approvalId) => state.decisionsSent.has(approvalId),
  decide(approvalId, optionId) {
    if (!send({ kind: "decide", approval_id: approvalId, option_id: optionId })) return false;
    state.decisionsSent.add(approvalId);
    return true;
  },
  setMode: (modeId) => send({ kind: "set_mode", mode_id: modeId }),
  setOption: (optionId, value) => send({ kind: "set_option", option_id: optionId, value }),
  authenticate: (methodId) => send({ kind: "authenticate", method_id: methodId }),
};

function upsert(entry) {
  if (!entry || typeof entry.id !== "string" || typeof entry.type !== "string") return;
  if (entry.type === "controls") return showControls(entry);
  if (entry.type === "approval" && entry.state !== "pending") state.decisionsSent.delete(entry.id);
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
  document.title = `${title} · tether`;
  setRoot(session.cwd);
}

function setRunning(running) {
  if (running !== state.running) state.stopping = false;
  state.running = running;
  updateControls();
}

function end(reason, notice = `Session ended: ${reason}.`) {
  state.ended = true;
  state.running = false;
  setStatus(reason === "unknown session" || reason === "not admitted" ? `ended: ${reason}` : "ended");
  showNotice(notice);
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

function updateControls() {
  const live = state.connected && !state.ended;
  ui.input.disabled = state.ended;
  ui.input.placeholder = state.ended ? "Session ended" : "Message the agent…";
  ui.send.disabled = !live;
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

function submitPrompt() {
  const text = ui.input.value.trim();
  if (!text || ui.send.disabled) return;
  if (send({ kind: "prompt", text })) {
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

if (SESSION_ID_RE.test(sessionFromPath(location.pathname).id)) connect();
else end("bad session id", "This address is not a tether session link.");
updateControls();
