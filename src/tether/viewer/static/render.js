// Transcript entries (docs/protocol.md section 3, "Entries") as DOM elements, and what
// the page shows around them: the plan near the current turn, the approval queue
// (queue.js), the empty-session hint, and a jump-to-latest button that keeps the view
// still while the user reads back. Text from the wire only ever becomes text nodes.
// data-testid values are a public contract (DESIGN.md, "Public interface").
//
// Calling contract: app.js calls renderEntry(entry, actions) for each entry it shows and
// appendText(el, text) for streamed text; after it has applied a message it calls
// observe(message), which keeps what spans entries (turn ends, stops, snapshots).

import { h, label, list, motion, setRoot, str } from "./dom.js";
import { markdown } from "./markdown.js";
import { renderControls } from "./controls.js";
import { dequeue, enqueue, prune, reveal } from "./queue.js";
import { remember } from "./sessions.js";
import { renderToolCall, setFate } from "./tools.js";

export { h, renderControls, setRoot };

const ui = {
  scroller: document.getElementById("scroller"),
  entries: document.getElementById("entries"),
  empty: document.querySelector("#scroller .empty"),
  jump: document.getElementById("jump") ?? jumpButton(),
};

function jumpButton() {
  const button = h("button", { type: "button", id: "jump", class: "jump", hidden: true }, "↓ Latest");
  document.getElementById("notice")?.after(button);
  return button.isConnected ? button : null;
}

const tools = new Map(); // tool entry id -> its latest entry
const fates = new Map(); // tool entry id -> "asking" | "denied" | "expired" | "stopped"
let turnTools = new Set(); // tool entry ids since the latest user prompt
let closing = []; // tool calls turned "failed" just before a turn ended (the host closing them)
let failedNow = null;
let stopAsked = false; // the stop button was tapped here during this turn
const failedAfterStop = new Set(); // calls that turned failed since: stopped, whoever closed them
const turn = { running: false, stopped: false };
const plan = { el: null, entry: null };

/**
 * The element for one entry. `actions.decide(approvalId, optionId)` answers an approval
 * (true once sent); `actions.sent(approvalId)` says whether it was answered from here;
 * `actions.authenticate(methodId)` starts an agent-side login (true once sent).
 */
export function renderEntry(entry, actions) {
  switch (entry.type) {
    case "message":
      return renderMessage(entry);
    case "tool_call":
      return renderTool(entry);
    case "plan":
      return renderPlan(entry);
    case "approval":
      return renderApproval(entry, actions);
    case "login":
      return renderLogin(entry, actions);
    default:
      return null; // unknown entry types are skipped, as unknown message kinds are
  }
}

// ---- messages --------------------------------------------------------------------

const sources = new WeakMap(); // .text element of a Markdown message -> its source text
const BY = { terminal: "typed at the terminal", viewer: "sent from the app" };

function renderMessage(entry) {
  const thought = entry.role === "thought";
  const role = thought ? "agent" : ["user", "agent", "system"].includes(entry.role) ? entry.role : "system";
  if (role === "user") turnTools = new Set();
  const by = role === "user" && BY[entry.by] ? entry.by : undefined;
  const text = h("div", { class: role === "agent" ? "text md" : "text" });
  if (role === "agent") setMarkdown(text, str(entry.text));
  else text.append(str(entry.text)); // what a person typed shows as typed
  // The host's warning while something approves by itself (id "banner") stays in view while on.
  const banner = entry.id === "banner" ? String(entry.on === true) : undefined;
  return h(
    "article",
    { testid: "message", class: "entry msg", data: { role, kind: thought ? "thought" : undefined, by, banner, id: entry.id } },
    thought ? thinkingToggle() : null,
    by ? h("div", { class: "msg-label by" }, BY[by]) : null,
    text,
    role === "user" ? attachedFiles(entry.attachments) : null,
  );
}

// What went with a prompt: each file's name and size (the host keeps no bytes in the transcript).
function attachedFiles(files) {
  const items = list(files).filter((f) => f && typeof f.name === "string");
  if (items.length === 0) return null;
  return h("ul", { class: "msg-files" }, items.map((f) =>
    h("li", { testid: "prompt-attachment" }, `📎 ${f.name}`, typeof f.size === "number" ? ` · ${Math.ceil(f.size / 1024)} KB` : "")));
}

// The agent's thinking is folded to a few lines (a phone has little room); a tap shows all.
function thinkingToggle() {
  const button = h("button", { type: "button", class: "msg-label thinking", "aria-expanded": "false" }, "Thinking");
  button.addEventListener("click", () => {
    const open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", String(open));
  });
  return button;
}

// Nodes that did not change stay as they are: a screen reader hears only what is new, and
// a selection or a tapped "Copy" in an earlier block survives the stream.
function replaceFrom(el, first, nodes) {
  const old = [...el.childNodes].slice(first);
  let same = 0;
  while (same < old.length && same < nodes.length && old[same].isEqualNode(nodes[same])) same++;
  for (const node of old.slice(same)) node.remove();
  el.append(...nodes.slice(same));
}

function setMarkdown(el, source) {
  sources.set(el, source);
  streams.delete(el);
  replaceFrom(el, 0, [...markdown(source).childNodes]);
}

// Streaming costs what is new, not the whole message again: the text up to the last blank
// line outside a code fence is parsed once, in segments, and only the tail after it is
// parsed again on each append. A segment boundary can split a loose list in two, so the
// message is parsed whole once its stream ends (observe: the next message of another kind).
const streams = new Map(); // .text element -> {at: characters done, count: their nodes}
const FENCE_LINE = /^ {0,3}(`{3,}|~{3,})/;

function boundary(source, from) {
  let at = from;
  let fence = null;
  let index = from;
  for (const line of source.slice(from).split("\n")) {
    const end = index + line.length + 1;
    const m = FENCE_LINE.exec(line);
    if (m && (fence === null || (m[1][0] === fence[0] && m[1].length >= fence.length))) fence = fence === null ? m[1] : null;
    else if (fence === null && line.trim() === "" && end <= source.length) at = end;
    index = end;
  }
  return at;
}

function streamMarkdown(el, source) {
  sources.set(el, source);
  let done = streams.get(el);
  if (!done) streams.set(el, (done = { at: 0, count: 0 }));
  const at = boundary(source, done.at);
  if (at > done.at) {
    for (const node of [...el.childNodes].slice(done.count)) node.remove();
    el.append(markdown(source.slice(done.at, at)));
    done.at = at;
    done.count = el.childNodes.length;
  }
  replaceFrom(el, done.count, [...markdown(source.slice(at)).childNodes]);
}

function finishStreams() {
  for (const el of new Set([...streams.keys(), ...pending])) if (el.isConnected) setMarkdown(el, sources.get(el));
  streams.clear();
  pending.clear();
}

const pending = new Set();
let frame = 0;

/** Append streamed text to a message element made by renderEntry. */
export function appendText(el, text) {
  const target = el.querySelector(".text");
  if (!target) return;
  if (!sources.has(target)) return target.append(text);
  const source = sources.get(target) + text;
  sources.set(target, source);
  // A long tail (one big code block) is parsed at most once per frame, whatever the stream's rate.
  if (source.length - (streams.get(target)?.at ?? 0) < 8_000) return streamMarkdown(target, source);
  pending.add(target);
  frame ||= requestAnimationFrame(() => {
    frame = 0;
    for (const node of pending) if (sources.has(node)) streamMarkdown(node, sources.get(node));
    pending.clear();
  });
}

// ---- tool calls and what happened to them -------------------------------------------

function renderTool(entry) {
  const before = tools.get(entry.id);
  tools.set(entry.id, entry);
  turnTools.add(entry.id);
  if (entry.status === "failed" && before?.status !== "failed") {
    failedNow = entry.id;
    if (stopAsked) failedAfterStop.add(entry.id);
  }
  return h("article", { testid: "message", class: "entry tool-entry", data: { role: "tool", id: entry.id } }, renderToolCall(entry, fates.get(entry.id) ?? null));
}

function toolCard(id) {
  const holder = ui.entries?.querySelector(`[data-id="${CSS.escape(id)}"]`);
  return holder?.querySelector(":scope > .tool") ?? null;
}

function setToolFate(id, fate) {
  if (!id) return;
  if (fate) fates.set(id, fate);
  else fates.delete(id);
  setFate(toolCard(id), fate);
}

const REJECT = new Set(["reject_once", "reject_always"]);

function fateOf(approval) {
  if (approval.state === "pending") return "asking";
  if (approval.state === "expired") return "expired";
  if (approval.state === "cancelled") return "stopped";
  const chosen = list(approval.options).find((o) => o?.option_id === approval.outcome);
  return REJECT.has(chosen?.kind) ? "denied" : null;
}

// A stop ends the turn: whatever was still open, or closed by the host just before it
// said so (`closed`), was stopped, not failed; a plan left unfinished was abandoned.
function turnStopped(closed) {
  closed = [...closed, ...failedAfterStop];
  for (const id of new Set([...turnTools, ...closed])) {
    const status = tools.get(id)?.status;
    const fate = fates.get(id);
    if (fate === "denied" || fate === "expired") continue;
    if (closed.includes(id) || status === "pending" || status === "in_progress") setToolFate(id, "stopped");
  }
  turn.stopped = true;
}

// ---- plan ------------------------------------------------------------------------

const PLAN_MARKS = { completed: "✓", in_progress: "◐", pending: "○" };
const PLAN_WORDS = { completed: "done", in_progress: "in progress", pending: "to do" };

function planState(entry) {
  const steps = list(entry?.entries);
  if (steps.length && steps.every((step) => step?.status === "completed")) return "done";
  if (turn.running) return "active";
  return turn.stopped ? "abandoned" : "unfinished";
}

function planHeadText(state, steps) {
  const done = steps.filter((step) => step?.status === "completed").length;
  const words = { done: "all done", active: "in progress", abandoned: "abandoned: the turn was stopped", unfinished: "not finished" };
  return `${done} of ${steps.length} · ${words[state]}`;
}

function renderPlan(entry) {
  const steps = list(entry.entries);
  const state = planState(entry);
  const el = h(
    "section",
    { testid: "plan", class: "entry card plan", data: { id: entry.id, state }, "aria-label": "The agent's plan" },
    h("header", { class: "card-head plan-head" }, h("span", {}, "Plan"), h("span", { class: "plan-state" }, planHeadText(state, steps))),
    h(
      "ol",
      {},
      steps.map((step) => {
        const status = str(step?.status, "pending");
        return h(
          "li",
          { data: { status, priority: str(step?.priority) || undefined } },
          h("span", { class: "mark", role: "img", "aria-label": PLAN_WORDS[status] ?? label(status) }, PLAN_MARKS[status] ?? "○"),
          h("span", {}, str(step?.content)),
        );
      }),
    ),
  );
  plan.el = el;
  plan.entry = entry;
  // After app.js has put it in place: a plan updated in a later turn moves to that turn.
  queueMicrotask(() => placePlan(el));
  return el;
}

function placePlan(el) {
  if (!el.isConnected || !ui.entries) return;
  const prompts = ui.entries.querySelectorAll(':scope > [data-role="user"]');
  const last = prompts[prompts.length - 1];
  if (last && el.compareDocumentPosition(last) & Node.DOCUMENT_POSITION_FOLLOWING) last.after(el);
}

function refreshPlan() {
  if (!plan.el?.isConnected) return;
  const state = planState(plan.entry);
  plan.el.dataset.state = state;
  plan.el.querySelector(".plan-state").textContent = planHeadText(state, list(plan.entry.entries));
}

// ---- approvals -------------------------------------------------------------------

const OUTCOMES = {
  allow_once: "Approved once",
  allow_always: "Approved always",
  reject_once: "Denied",
  reject_always: "Denied always",
};

/** What happened to a resolved approval, e.g. "Approved once (viewer)". */
export function outcomeText(entry) {
  if (entry.state === "cancelled") return "Cancelled";
  if (entry.state === "expired") return "Expired";
  const options = list(entry.options);
  const chosen = options.find((o) => o?.option_id === entry.outcome);
  const what = OUTCOMES[chosen?.kind] || str(chosen?.name) || str(entry.outcome) || "Decided";
  return entry.decided_by ? `${what} (${entry.decided_by})` : what;
}

function renderApproval(entry, actions) {
  const state = str(entry.state);
  if (typeof entry.tool_call_id === "string") setToolFate(entry.tool_call_id, fateOf(entry));
  const title = h("div", { class: "approval-title" }, str(entry.title, "tool call"));
  if (state === "pending") {
    // The card to answer is in the queue above the prompt box; here, a line that leads to it.
    enqueue(entry, actions, tools.get(entry.tool_call_id));
    const go = h("button", { type: "button", class: "btn secondary review" }, "Review");
    go.addEventListener("click", () => reveal(entry.id));
    return h("section", { class: "entry card approval stub", data: { id: entry.id, state } }, h("p", { class: "outcome", data: { state } }, "Waiting for your approval"), title, go);
  }
  dequeue(entry.id);
  // Resolved: no "approval" testid any more (DESIGN.md), one compact line of outcome.
  return h(
    "section",
    { class: "entry card approval", data: { id: entry.id, state, denied: fateOf(entry) === "denied" || undefined } },
    h("p", { testid: "approval-outcome", class: "outcome", data: { state } }, outcomeText(entry)),
    WHY[state] ? h("div", { class: "approval-kind" }, WHY[state]) : null,
    title,
  );
}

const WHY = { cancelled: "The turn was stopped before anyone answered.", expired: "Nobody answered in time, so it was denied." };

// ---- what spans entries ------------------------------------------------------------

/** Take note of a message app.js has just applied (see the calling contract at the top). */
export function observe(message) {
  if (message?.kind !== "append" && streams.size) finishStreams();
  const closed = closing;
  closing = [];
  if (message?.kind === "snapshot") {
    const entries = list(message.entries);
    turn.running = message.running === true;
    prune(new Set(entries.filter((e) => e?.type === "approval" && e.state === "pending").map((e) => e.id)));
    showEmptyHint(message.session ?? {});
    remember(message.session ?? {});
    refreshPlan();
  } else if (message?.kind === "turn") {
    turn.running = message.running === true;
    if (turn.running) turn.stopped = false;
    else if (message.stop_reason === "cancelled") turnStopped(closed);
    stopAsked = false;
    failedAfterStop.clear();
    refreshPlan();
  } else if (message?.kind === "entry") {
    // The host closes a stopped turn's open calls (and cancels its approvals) just before it says the turn ended.
    const type = message.entry?.type;
    if (type === "tool_call" && failedNow === message.entry.id) closing = [...closed, failedNow];
    else if (type === "approval" || type === "plan") closing = closed;
  }
  failedNow = null;
}

document.querySelector('[data-testid="stop"]')?.addEventListener("click", () => {
  stopAsked = true;
});

function showEmptyHint(session) {
  if (!ui.empty) return;
  const where = str(session.cwd) ? ` It works in ${session.cwd}, on your computer.` : "";
  ui.empty.replaceChildren(
    h("strong", {}, "Nothing here yet."),
    h("br"),
    `Tell the agent what to do in the box below.${where} Edits and commands wait for your approval here.`,
  );
}

// ---- scrolling: follow the latest while at the bottom, never move while reading back ----

let following = true;
let lastTop = 0;

function distanceFromBottom() {
  const s = ui.scroller;
  return s.scrollHeight - s.scrollTop - s.clientHeight;
}

if (ui.scroller && ui.entries) {
  ui.scroller.addEventListener(
    "scroll",
    () => {
      // Only a move up is the person reading back: content that grew under a scroll to the
      // bottom (its event comes a frame later) or a smooth scroll down changes nothing.
      const top = ui.scroller.scrollTop;
      if (distanceFromBottom() < 48) following = true;
      else if (top < lastTop - 1) following = false;
      lastTop = top;
      if (ui.jump) ui.jump.hidden = following;
    },
    { passive: true },
  );
  const follow = () => {
    if (following) ui.scroller.scrollTop = ui.scroller.scrollHeight;
    else if (ui.jump && distanceFromBottom() > 48) ui.jump.hidden = false;
  };
  new ResizeObserver(follow).observe(ui.entries);
  new ResizeObserver(follow).observe(ui.scroller);
  ui.jump?.addEventListener("click", () => {
    following = true;
    ui.jump.hidden = true;
    ui.scroller.scrollTo({ top: ui.scroller.scrollHeight, behavior: motion() });
  });
}

// ---- login (protocol.md "Entries": login) ---------------------------------------------

function renderLogin(entry, actions) {
  if (entry.state === "done") {
    return h(
      "section",
      { class: "entry card login", data: { id: entry.id, state: "done" } },
      h("p", { class: "outcome", data: { state: "done" } }, "Logged in"),
    );
  }
  return h(
    "section",
    { testid: "login", class: "entry card login", data: { id: entry.id, state: "needed" }, role: "group", "aria-label": "Login needed" },
    h("div", { class: "login-title" }, "The agent needs a login"),
    list(entry.methods).map((method) => renderLoginMethod(method, actions)),
  );
}

function renderLoginMethod(method, actions) {
  const name = str(method?.name) || str(method?.id, "login");
  const about = str(method?.description) ? h("div", { class: "method-about" }, method.description) : null;
  if (method?.kind === "agent" && typeof method.id === "string") {
    // Agent-side: the agent does the login itself (it may open a browser on the machine).
    const button = h("button", { type: "button", testid: "login-method", class: "btn primary" }, name);
    button.addEventListener("click", () => {
      if (actions.authenticate(method.id)) button.disabled = true;
    });
    return h("div", { class: "method" }, button, about);
  }
  const vars = list(method?.vars).map((v) => str(v) || str(v?.name)).filter(Boolean);
  return h(
    "div",
    { class: "method" },
    h("div", { class: "method-name" }, name),
    about,
    method?.kind === "terminal" ? [
      h("code", { class: "cmd" }, str(method.command)),
      h("div", { class: "method-hint" }, "run this on the machine, then type /login there"),
    ] : null,
    method?.kind === "env_var" ? [
      h("div", { class: "vars" }, vars.map((v) => h("code", { class: "cmd" }, v))),
      h("div", { class: "method-hint" }, "set this where tether runs, then restart tether"),
    ] : null,
  );
}
