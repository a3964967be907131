// Tool calls as cards (docs/protocol.md "Entries": tool_call): kind icon, title, status in
// words, paths, diffs with line numbers that wrap, command output with its ANSI colours.

import { ansi } from "./ansi.js";
import { collapse, lineDiff } from "./diff.js";
import { fold, h, label, list, sessionRoot, shortPath, str } from "./dom.js";

const ICONS = { read: "📄", edit: "✏️", delete: "🗑️", move: "📦", search: "🔍", execute: "▶️", think: "💭", fetch: "🌐", other: "⚙️" };
const STATUS_WORDS = { pending: "queued", in_progress: "running", completed: "done", failed: "failed" };
// What happened to a call beyond its ACP status: an approval said no, or the turn was stopped.
const FATE_WORDS = { asking: "needs approval", denied: "denied", expired: "denied (timed out)", stopped: "stopped" };

const OUTPUT_LINES = 12; // lines of command output shown before "show all" (the newest ones)
const DIFF_ROWS = 40; // diff rows shown before "show all"
const TEXT_LINES = 16;

/** The status word of a tool call whose ACP status is `status` and whose fate (or null) is `fate`. */
export function statusWord(status, fate, closed = "") {
  // The host closes a call its turn left open (closed_by_host): it was not run, or did not finish.
  if (!FATE_WORDS[fate] && status === "failed" && closed) return /not run/.test(closed) ? "not run" : "unfinished";
  return FATE_WORDS[fate] ?? STATUS_WORDS[status] ?? label(status);
}

/** The card of one tool call. `fate` is "asking", "denied", "expired", "stopped" or null. */
export function renderToolCall(entry, fate = null) {
  const status = str(entry.status, "pending");
  const kind = str(entry.kind, "other");
  const closed = str(entry.closed_by_host);
  const content = list(entry.content);
  const shown = new Set(content.filter((item) => item?.type === "diff").map((item) => item.path));
  // The session folder itself ("." once shortened) says nothing: commands all run there.
  const locations = list(entry.locations).filter((path) => typeof path === "string" && !shown.has(path) && path !== sessionRoot());
  const card = h(
    "section",
    { testid: "tool-call", class: "card tool", data: { status, kind, fate, closed: closed || undefined } },
    h(
      "header",
      { class: "tool-head" },
      h("span", { class: "tool-icon", "aria-hidden": "true" }, ICONS[kind] ?? ICONS.other),
      h("span", { class: "tool-kind" }, label(kind) || "tool"),
      h("span", { class: "badge", data: { status, fate } }, statusWord(status, fate, closed)),
      h("span", { class: "tool-title" }, str(entry.title, "tool call")),
    ),
    locations.length ? h("ul", { class: "locations" }, locations.map((path) => h("li", {}, shortPath(path)))) : null,
    content.map((item, index) => renderToolContent(item, `${entry.id}/${index}`)),
    closed && fate !== "stopped" ? h("div", { class: "tool-note" }, closed) : null,
  );
  card.addEventListener("unfold", () => card.replaceWith(renderToolCall(entry, fate)));
  return card;
}

/** Put a new fate on a card already on the page (an approval was answered, the turn stopped). */
export function setFate(card, fate) {
  if (!card) return;
  const badge = card.querySelector(".tool-head .badge");
  if (fate) card.dataset.fate = fate;
  else delete card.dataset.fate;
  if (badge) {
    if (fate) badge.dataset.fate = fate;
    else delete badge.dataset.fate;
    badge.textContent = statusWord(card.dataset.status, fate, card.dataset.closed ?? "");
    if (fate === "stopped") card.querySelector(".tool-note")?.remove();
  }
}

export function renderToolContent(item, key) {
  if (item?.type === "diff") return renderDiff(item, key);
  if (item?.type === "terminal") return renderTerminal(item, key);
  if (item?.type === "text") {
    const lines = str(item.text).split("\n");
    const { shown, more } = fold(key, lines, TEXT_LINES, false);
    return h("div", { class: "tool-text" }, shown.join("\n"), more);
  }
  return null;
}

/** Diff rows with the line number each shows (new side; old side for a removed line). */
function numbered(rows) {
  const marks = changedParts(rows);
  let oldNo = 1;
  let newNo = 1;
  return rows.map(([op, line], index) => {
    if (op === "…") {
      oldNo += line;
      newNo += line;
      return h("span", { class: "line skip" }, `⋯ ${line} unchanged line${line === 1 ? "" : "s"}`);
    }
    const n = op === "-" ? oldNo++ : newNo++;
    if (op === " ") oldNo++;
    const part = marks.get(index);
    const text = part && part[1] > part[0] ? [line.slice(0, part[0]), h("mark", { class: "chg" }, line.slice(part[0], part[1])), line.slice(part[1])] : line;
    // The number is shown by CSS from data-n: copying a line copies the code only. One span
    // holds the code: the line is a grid of number and code.
    return h("span", { class: op === "+" ? "line add" : op === "-" ? "line del" : "line", data: { n: String(n) } }, h("span", {}, `${op} `, text));
  });
}

/**
 * Where a changed line differs from the line it replaced: a run of removed lines followed
 * by as many added ones pairs them up, and each pair marks what lies between their common
 * start and common end (row index -> [from, to]), unless nearly all of it changed.
 */
function changedParts(rows) {
  const marks = new Map();
  for (let i = 0; i < rows.length; ) {
    let del = i;
    while (del < rows.length && rows[del][0] === "-") del++;
    let add = del;
    while (add < rows.length && rows[add][0] === "+") add++;
    if (del - i > 0 && add - del === del - i) {
      for (let k = 0; k < del - i; k++) {
        const a = rows[i + k][1];
        const b = rows[del + k][1];
        let start = 0;
        while (start < a.length && start < b.length && a[start] === b[start]) start++;
        let end = 0;
        while (end < a.length - start && end < b.length - start && a[a.length - 1 - end] === b[b.length - 1 - end]) end++;
        if (start + end >= Math.min(a.length, b.length) * 0.3) {
          marks.set(i + k, [start, a.length - end]);
          marks.set(del + k, [start, b.length - end]);
        }
      }
    }
    i = Math.max(add, i + 1);
  }
  return marks;
}

export function renderDiff(item, key) {
  const rows = numbered(collapse(lineDiff(str(item.old_text), str(item.new_text))));
  const isNew = item.old_text === null || item.old_text === undefined;
  const added = rows.filter((row) => row.classList.contains("add")).length;
  const removed = rows.filter((row) => row.classList.contains("del")).length;
  const { shown, more } = fold(key, rows, DIFF_ROWS, false, "rows");
  return h(
    "div",
    { class: "diff" },
    h(
      "div",
      { class: "diff-path" },
      h("span", { class: "path" }, shortPath(item.path)),
      isNew ? h("span", { class: "badge" }, "new file") : null,
      h("span", { class: "counts" }, h("span", { class: "plus" }, `+${added}`), " ", h("span", { class: "minus" }, `−${removed}`)),
    ),
    h("pre", { class: "code" }, shown.length ? shown : h("span", { class: "line skip" }, "(empty)")),
    more,
  );
}

export function renderTerminal(item, key) {
  const exit = item.exit_code;
  // A carriage return redraws its line (progress bars): keep what the line ends as.
  const lines = str(item.output)
    .replace(/\r\n/g, "\n")
    .split("\n")
    .map((line) => line.slice(line.lastIndexOf("\r") + 1));
  if (lines.length && lines[lines.length - 1] === "") lines.pop();
  const { shown, more } = fold(key, lines, OUTPUT_LINES, true);
  return h(
    "div",
    { class: "terminal" },
    h("div", { class: "term-cmd" }, h("span", { class: "prompt-mark", "aria-hidden": "true" }, "$ "), str(item.command)),
    more,
    h("pre", { class: "code term-out" }, shown.length ? ansi(shown.join("\n")) : null),
    h(
      "div",
      { class: "term-foot", data: { exit: typeof exit === "number" ? String(exit) : undefined } },
      item.truncated ? "older output cut · " : "",
      typeof exit === "number" ? (exit === 0 ? "exit 0" : `exit ${exit} (error)`) : "running…",
    ),
  );
}
