// Transcript entries (docs/protocol.md section 3, "Entries") as DOM elements.
// Text from the wire only ever becomes text nodes (append / textContent), never markup.
// data-testid values are a public contract (DESIGN.md, "Public interface").

import { collapse, lineDiff } from "./diff.js";

/** createElement with attributes ("testid" -> data-testid, "data" -> dataset) and children. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "testid") el.dataset.testid = value;
    else if (key === "data") Object.assign(el.dataset, value);
    else if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(2)) {
    if (child !== undefined && child !== null && child !== false) el.append(child);
  }
  return el;
}

const str = (value, fallback = "") => (typeof value === "string" ? value : fallback);

// Paths inside the session's folder show relative to it: phones have little room.
let root = "";
export function setRoot(cwd) {
  root = typeof cwd === "string" && cwd ? `${cwd.replace(/\/+$/, "")}/` : "";
}
function shortPath(path) {
  const text = str(path);
  if (!root) return text;
  return text === root.slice(0, -1) ? "." : text.startsWith(root) ? text.slice(root.length) : text;
}
const label = (value) => str(value).replaceAll("_", " ");

/**
 * The element for one entry. `actions.decide(approvalId, optionId)` answers an approval
 * (true once sent); `actions.sent(approvalId)` says whether it was answered from here.
 */
export function renderEntry(entry, actions) {
  switch (entry.type) {
    case "message":
      return renderMessage(entry);
    case "tool_call":
      return h("article", { testid: "message", class: "entry tool-entry", data: { role: "tool", id: entry.id } }, renderToolCall(entry));
    case "plan":
      return renderPlan(entry);
    case "approval":
      return renderApproval(entry, actions);
    default:
      return null; // unknown entry types are skipped, as unknown message kinds are
  }
}

function renderMessage(entry) {
  const thought = entry.role === "thought";
  const role = thought ? "agent" : ["user", "agent", "system"].includes(entry.role) ? entry.role : "system";
  return h(
    "article",
    { testid: "message", class: "entry msg", data: { role, kind: thought ? "thought" : undefined, id: entry.id } },
    thought ? h("div", { class: "msg-label" }, "Thinking") : null,
    h("div", { class: "text" }, str(entry.text)),
  );
}

/** Append streamed text to a message element made by renderEntry. */
export function appendText(el, text) {
  el.querySelector(".text")?.append(text);
}

function renderToolCall(entry) {
  const status = str(entry.status, "pending");
  const content = Array.isArray(entry.content) ? entry.content : [];
  const shown = new Set(content.filter((item) => item?.type === "diff").map((item) => item.path));
  const locations = (Array.isArray(entry.locations) ? entry.locations : []).filter(
    (path) => typeof path === "string" && !shown.has(path),
  );
  return h(
    "section",
    { testid: "tool-call", class: "card tool", data: { status, kind: str(entry.kind, "other") } },
    h(
      "header",
      { class: "tool-head" },
      h("span", { class: "tool-kind" }, label(entry.kind) || "tool"),
      h("span", { class: "badge", data: { status } }, label(status)),
      h("span", { class: "tool-title" }, str(entry.title, "tool call")),
    ),
    locations.length ? h("ul", { class: "locations" }, locations.map((path) => h("li", {}, shortPath(path)))) : null,
    content.map(renderToolContent),
  );
}

function renderToolContent(item) {
  if (item?.type === "diff") return renderDiff(item);
  if (item?.type === "terminal") return renderTerminal(item);
  if (item?.type === "text") return h("div", { class: "tool-text" }, str(item.text));
  return null;
}

function renderDiff(item) {
  const rows = collapse(lineDiff(str(item.old_text), str(item.new_text)));
  const isNew = item.old_text === null || item.old_text === undefined;
  const lines = rows.map(([op, line]) =>
    op === "…"
      ? h("span", { class: "line skip" }, `⋯ ${line} unchanged line${line === 1 ? "" : "s"}`)
      : h("span", { class: op === "+" ? "line add" : op === "-" ? "line del" : "line" }, `${op} ${line}`),
  );
  return h(
    "div",
    { class: "diff" },
    h("div", { class: "diff-path" }, shortPath(item.path), isNew ? h("span", { class: "badge" }, "new file") : null),
    h("pre", { class: "code" }, lines.length ? lines : h("span", { class: "line skip" }, "(empty)")),
  );
}

function renderTerminal(item) {
  const exit = item.exit_code;
  return h(
    "div",
    { class: "terminal" },
    h("div", { class: "term-cmd" }, `$ ${str(item.command)}`),
    h("pre", { class: "code term-out" }, str(item.output)),
    h(
      "div",
      { class: "term-foot" },
      item.truncated ? "output truncated · " : "",
      typeof exit === "number" ? `exit ${exit}` : "running…",
    ),
  );
}

const PLAN_MARKS = { completed: "✓", in_progress: "◐", pending: "○" };

function renderPlan(entry) {
  const steps = Array.isArray(entry.entries) ? entry.entries : [];
  return h(
    "section",
    { testid: "plan", class: "entry card plan", data: { id: entry.id } },
    h("header", { class: "card-head" }, "Plan"),
    h(
      "ol",
      {},
      steps.map((step) => {
        const status = str(step?.status, "pending");
        return h(
          "li",
          { data: { status, priority: str(step?.priority) || undefined } },
          h("span", { class: "mark", "aria-label": label(status) }, PLAN_MARKS[status] ?? "○"),
          h("span", {}, str(step?.content)),
        );
      }),
    ),
  );
}

// ACP option kinds -> the button's testid, default label and look; also its order.
const OPTION_BUTTONS = [
  ["allow_once", "approve-once", "Approve once", "primary"],
  ["allow_always", "approve-always", "Always approve", "secondary"],
  ["reject_once", "deny", "Deny", "danger"],
  ["reject_always", "deny-always", "Always deny", "secondary danger"],
];

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
  const options = Array.isArray(entry.options) ? entry.options : [];
  const chosen = options.find((o) => o?.option_id === entry.outcome);
  const what = OUTCOMES[chosen?.kind] || str(chosen?.name) || str(entry.outcome) || "Decided";
  return entry.decided_by ? `${what} (${entry.decided_by})` : what;
}

function renderApproval(entry, actions) {
  const state = str(entry.state);
  const title = h("div", { class: "approval-title" }, str(entry.title, "tool call"));
  if (state !== "pending") {
    // Resolved: no "approval" testid any more (DESIGN.md), one compact line of outcome.
    return h(
      "section",
      { class: "entry card approval", data: { id: entry.id, state } },
      h("p", { testid: "approval-outcome", class: "outcome", data: { state } }, outcomeText(entry)),
      title,
    );
  }
  const options = Array.isArray(entry.options) ? entry.options : [];
  const card = h(
    "section",
    { testid: "approval", class: "entry card approval", data: { id: entry.id, state }, role: "group", "aria-label": "Approval needed" },
    h("header", { class: "card-head" }, "Approval needed"),
    title,
    entry.kind ? h("div", { class: "approval-kind" }, label(entry.kind)) : null,
  );
  const sent = actions.sent(entry.id);
  const buttons = [];
  const known = OPTION_BUTTONS.map(([kind]) => kind);
  // Options of a kind this viewer does not know still get a button: never leave one unanswerable.
  for (const [kind, testid, fallback, look] of [...OPTION_BUTTONS, [null, undefined, "Choose", "secondary"]]) {
    options
      .filter((o) => typeof o?.option_id === "string" && (kind ? o.kind === kind : !known.includes(o.kind)))
      .forEach((option, index) => {
        const button = h(
          "button",
          { type: "button", class: `btn ${look}`, testid: index === 0 ? testid : undefined, disabled: sent },
          str(option.name) || fallback,
        );
        button.addEventListener("click", () => {
          if (!actions.decide(entry.id, option.option_id)) return;
          for (const b of buttons) b.disabled = true;
          button.classList.add("chosen");
        });
        buttons.push(button);
      });
  }
  card.append(h("div", { class: "actions" }, buttons));
  return card;
}
