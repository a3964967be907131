// Transcript entries (docs/protocol.md section 3, "Entries") as DOM elements.
// Text from the wire only ever becomes text nodes (append / textContent), never markup.
// data-testid values are a public contract (DESIGN.md, "Public interface").

import { collapse, lineDiff } from "./diff.js";

const given = (value) => value !== undefined && value !== null && value !== false;

/** createElement with attributes ("testid" -> data-testid, "data" -> dataset) and children; unset ones are left out. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (!given(value)) continue;
    if (key === "testid") el.dataset.testid = value;
    else if (key === "data") {
      for (const [name, item] of Object.entries(value)) if (given(item)) el.dataset[name] = item;
    } else if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(2)) if (given(child)) el.append(child);
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
 * (true once sent); `actions.sent(approvalId)` says whether it was answered from here;
 * `actions.authenticate(methodId)` starts an agent-side login (true once sent).
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
    case "login":
      return renderLogin(entry, actions);
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
    h("header", { class: "card-head" }, entry.source === "host" ? "Approval needed (asked by tether: the agent did not ask)" : "Approval needed"),
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

// ---- login (protocol.md "Entries": login) ---------------------------------------------

const list = (value) => (Array.isArray(value) ? value : []);

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

// ---- controls bar (protocol.md "Entries": controls) -----------------------------------

const SELF = " — approves by itself";

/**
 * The children of the controls bar (empty: nothing to switch). A change is sent with
 * `actions.setMode(id)` / `actions.setOption(id, value)` and the control goes back to the
 * current value: only the host's next controls entry shows the change (it may refuse).
 */
export function renderControls(entry, actions) {
  const modes = entry?.modes ?? {};
  const remote = entry?.remote === true;
  const items = [];
  const available = list(modes.available).filter((m) => typeof m?.id === "string");
  if (available.length) {
    const choices = available.map((m) => ({ value: m.id, name: str(m.name) || m.id, about: str(m.description), self: m.self_approving === true }));
    items.push(chooser("Mode", { testid: "mode-select" }, modes.current, choices, remote, (id) => actions.setMode(id)));
  }
  for (const option of list(entry?.options)) {
    if (typeof option?.id !== "string") continue;
    const name = str(option.name) || option.id;
    const selfValues = list(option.self_approving_values);
    if (option.type === "boolean") {
      items.push(toggle(name, option, remote && selfValues.includes(option.current !== true), actions));
    } else if (option.type === "select") {
      const choices = list(option.choices)
        .filter((c) => typeof c?.value === "string")
        .map((c) => ({ value: c.value, name: str(c.name) || c.value, self: selfValues.includes(c.value) }));
      const attrs = { testid: "option-select", data: { optionId: option.id } };
      items.push(chooser(name, attrs, option.current, choices, remote, (value) => actions.setOption(option.id, value)));
    }
  }
  return items;
}

function chooser(name, attrs, current, choices, remote, choose) {
  const now = choices.find((c) => c.value === current);
  const select = h(
    "select",
    { ...attrs, "aria-label": name },
    now ? null : h("option", { value: "", disabled: true }, typeof current === "string" ? current : "—"),
    choices.map((c) =>
      h("option", { value: c.value, title: c.about || undefined, disabled: remote && c.self }, c.self ? c.name + SELF : c.name),
    ),
  );
  const shown = now ? now.value : "";
  select.value = shown;
  select.addEventListener("change", () => {
    const value = select.value;
    select.value = shown;
    if (value !== shown) choose(value);
  });
  return h("label", { class: "ctl", data: { self: now?.self } }, h("span", { class: "ctl-name" }, name), select);
}

function toggle(name, option, locked, actions) {
  const on = option.current === true;
  const box = h("input", { type: "checkbox", testid: "option-toggle", data: { optionId: option.id }, disabled: locked });
  box.checked = on;
  box.addEventListener("change", () => {
    const value = box.checked;
    box.checked = on;
    actions.setOption(option.id, value);
  });
  return h("label", { class: "ctl toggle" }, box, h("span", { class: "ctl-name" }, name));
}
