// Agent Markdown as DOM nodes: a small CommonMark/GFM subset (paragraphs, headings, lists
// with task boxes, block quotes, fenced and indented code, tables, rules; code spans,
// emphasis, strike-through, links, autolinks). Every piece of wire text becomes a text
// node: no HTML string is ever parsed, so raw HTML in a message shows as typed. Links keep
// only http(s) and mailto targets; images show as links (the page loads nothing remote).

import { highlight } from "./highlight.js";

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const ITEM = /^( *)([-*+]|\d{1,9}[.)])(?:[ \t]+(.*))?$/;
const TABLE_RULE = /^ *\|?(?: *:?-+:? *\|)+(?: *:?-+:? *)?\|? *$/;
const SAFE_SCHEMES = new Set(["http:", "https:", "mailto:"]);

function el(tag, className, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.append(...children);
  return node;
}

/** A DocumentFragment for `text` (Markdown). */
export function markdown(text) {
  const out = document.createDocumentFragment();
  blocks(String(text).replace(/\r\n?/g, "\n").split("\n"), out);
  return out;
}

const blank = (line) => /^\s*$/.test(line);

function startsBlock(line, next) {
  return (
    FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || ITEM.test(line) ||
    (line.includes("|") && next !== undefined && TABLE_RULE.test(next) && next.includes("-"))
  );
}

function blocks(lines, parent) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (blank(line)) {
      i++;
      continue;
    }
    let m;
    if ((m = FENCE.exec(line))) {
      const close = new RegExp(`^ {0,3}${m[1][0]}{${m[1].length},}\\s*$`);
      const body = [];
      i++;
      while (i < lines.length && !close.test(lines[i])) body.push(lines[i++]);
      i++; // the closing fence (an unclosed fence, mid-stream, runs to the end)
      parent.append(codeBlock(body.join("\n"), m[2]));
      continue;
    }
    if ((m = HEADING.exec(line))) {
      const level = Math.min(m[1].length + 1, 6); // the page has the one h1: a message starts at h2
      parent.append(inline(m[2] ?? "", el(`h${level}`, "md-h")));
      i++;
      continue;
    }
    if (RULE.test(line)) {
      parent.append(el("hr"));
      i++;
      continue;
    }
    if (QUOTE.test(line)) {
      const inner = [];
      while (i < lines.length && !blank(lines[i]) && (m = QUOTE.exec(lines[i]) ?? [null, lines[i]])) {
        inner.push(m[1]);
        i++;
      }
      const quote = el("blockquote");
      blocks(inner, quote);
      parent.append(quote);
      continue;
    }
    if (ITEM.test(line)) {
      i = list(lines, i, parent);
      continue;
    }
    if (line.includes("|") && TABLE_RULE.test(lines[i + 1] ?? "") && (lines[i + 1] ?? "").includes("-")) {
      i = table(lines, i, parent);
      continue;
    }
    if (/^( {4}|\t)/.test(line)) {
      const body = [];
      while (i < lines.length && (/^( {4}|\t)/.test(lines[i]) || blank(lines[i]))) body.push(lines[i++].replace(/^( {4}|\t)/, ""));
      while (body.length && blank(body[body.length - 1])) body.pop();
      parent.append(codeBlock(body.join("\n"), ""));
      continue;
    }
    const para = [];
    while (i < lines.length && !blank(lines[i]) && (para.length === 0 || !startsBlock(lines[i], lines[i + 1]))) {
      para.push(lines[i++].trim());
    }
    parent.append(inline(para.join("\n"), el("p")));
  }
}

function list(lines, start, parent) {
  const first = ITEM.exec(lines[start]);
  const indent = first[1].length;
  const ordered = /\d/.test(first[2]);
  const node = el(ordered ? "ol" : "ul");
  if (ordered && parseInt(first[2], 10) !== 1) node.start = parseInt(first[2], 10);
  let i = start;
  while (i < lines.length) {
    const m = ITEM.exec(lines[i]);
    if (!m || m[1].length !== indent || /\d/.test(m[2]) !== ordered) break;
    const body = [m[3] ?? ""];
    const width = m[1].length + m[2].length + 1;
    i++;
    // The item goes on while lines are indented past its marker, or continue its paragraph.
    while (i < lines.length) {
      const line = lines[i];
      if (blank(line)) {
        if (i + 1 < lines.length && /^\s+/.test(lines[i + 1]) && lines[i + 1].search(/\S/) >= width) {
          body.push("");
          i++;
          continue;
        }
        break;
      }
      const lead = line.search(/\S/);
      const sub = ITEM.exec(line);
      if (lead >= Math.min(width, indent + 2)) body.push(line.slice(Math.min(lead, width)));
      else if (!sub && !startsBlock(line)) body.push(line.trim());
      else break;
      i++;
    }
    const item = el("li");
    const task = /^\[([ xX])\][ \t]+/.exec(body[0]);
    if (task) {
      body[0] = body[0].slice(task[0].length);
      const done = task[1] !== " ";
      item.className = "task";
      item.dataset.done = String(done);
      item.append(el("span", "task-box", done ? "☑" : "☐"), " ");
    }
    if (body.length === 1) inline(body[0], item);
    else {
      const holder = document.createDocumentFragment();
      blocks(body, holder);
      // A tight item is one paragraph: show it inline, as Markdown renderers do.
      if (holder.firstChild?.tagName === "P") {
        const p = holder.firstChild;
        p.remove();
        item.append(...p.childNodes);
      }
      item.append(holder);
    }
    node.append(item);
    while (i < lines.length && blank(lines[i]) && ITEM.test(lines[i + 1] ?? "") && ITEM.exec(lines[i + 1])[1].length === indent) i++;
  }
  parent.append(node);
  return i;
}

function cells(line) {
  let text = line.trim();
  if (text.startsWith("|")) text = text.slice(1);
  if (text.endsWith("|") && !text.endsWith("\\|")) text = text.slice(0, -1);
  return text.split(/(?<!\\)\|/).map((cell) => cell.trim().replaceAll("\\|", "|"));
}

function table(lines, start, parent) {
  const head = cells(lines[start]);
  const align = cells(lines[start + 1]).map((c) => (c.endsWith(":") ? (c.startsWith(":") ? "center" : "right") : ""));
  const tbl = el("table");
  const row = (values, tag) => {
    const tr = el("tr");
    head.forEach((_, index) => {
      const cell = inline(values[index] ?? "", el(tag));
      if (align[index]) cell.className = `align-${align[index]}`;
      tr.append(cell);
    });
    return tr;
  };
  tbl.append(el("thead", "", row(head, "th")));
  const body = el("tbody");
  let i = start + 2;
  while (i < lines.length && !blank(lines[i]) && lines[i].includes("|")) body.append(row(cells(lines[i++]), "td"));
  tbl.append(body);
  parent.append(el("div", "md-table", tbl));
  return i;
}

function codeBlock(code, lang) {
  const copy = el("button", "copy", "Copy");
  copy.type = "button";
  copy.setAttribute("aria-label", "Copy the code");
  copy.addEventListener("click", () => {
    navigator.clipboard?.writeText(code).then(
      () => (copy.textContent = "Copied"),
      () => (copy.textContent = "Copy failed"),
    );
  });
  const pre = el("pre", "md-code", el("code", "", ...highlight(code, lang)));
  if (lang) pre.dataset.lang = lang;
  return el("div", "md-code-wrap", el("div", "md-code-bar", el("span", "", lang || "code"), copy), pre);
}

/** A link target we let the browser follow, or null (javascript:, data:, relative...). */
export function safeHref(raw) {
  let url;
  try {
    url = new URL(raw.trim());
  } catch {
    return null;
  }
  return SAFE_SCHEMES.has(url.protocol) ? url.href : null;
}

function link(href, children) {
  const a = el("a", "", ...children);
  a.href = href;
  a.target = "_blank";
  a.rel = "noopener noreferrer nofollow";
  return a;
}

const PUNCT = /[!-/:-@[-`{-~]/;
// How far a closing delimiter is looked for: a paragraph full of unmatched `*`, `` ` `` or
// `[` costs linear time, not quadratic.
const REACH = 1000;
const WORD = /[\p{L}\p{N}]/u;

// Inline spans, appended to `parent` (also returned). One left-to-right scan; a delimiter
// without its closer is plain text.
function inline(text, parent) {
  let buffer = "";
  const flush = () => {
    if (buffer) parent.append(buffer);
    buffer = "";
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === "\\" && PUNCT.test(text[i + 1] ?? "")) {
      buffer += text[i + 1];
      i += 2;
      continue;
    }
    if (c === "\n") {
      flush();
      parent.append(el("br"));
      i++;
      continue;
    }
    if (c === "`") {
      const run = /^`+/.exec(text.slice(i))[0];
      const end = text.indexOf(run, i + run.length);
      if (end > 0 && end < i + REACH && text[end + run.length] !== "`") {
        flush();
        let code = text.slice(i + run.length, end).replaceAll("\n", " ");
        if (/^ .*[^ ].* $/.test(code)) code = code.slice(1, -1);
        parent.append(el("code", "", code));
        i = end + run.length;
        continue;
      }
      buffer += run;
      i += run.length;
      continue;
    }
    const span = emphasis(text, i);
    if (span) {
      flush();
      parent.append(inline(span.inner, el(span.tag)));
      i = span.end;
      continue;
    }
    if (c === "[" || (c === "!" && text[i + 1] === "[")) {
      const found = bracketLink(text, c === "!" ? i + 1 : i);
      if (found) {
        flush();
        const label = c === "!" ? [found.label || "image"] : inline(found.label, document.createDocumentFragment()).childNodes;
        const href = safeHref(found.href);
        parent.append(href ? link(href, [...label]) : el("span", "", ...label));
        i = found.end;
        continue;
      }
    }
    if (c === "<") {
      const m = /^<((?:https?|mailto):[^\s<>]+)>/i.exec(text.slice(i));
      const href = m && safeHref(m[1]);
      if (href) {
        flush();
        parent.append(link(href, [m[1]]));
        i += m[0].length;
        continue;
      }
    }
    if ((c === "h" || c === "H") && !WORD.test(text[i - 1] ?? "")) {
      const m = /^https?:\/\/[^\s<]+/i.exec(text.slice(i));
      if (m) {
        let url = m[0].replace(/[.,:;!?'"]+$/, "");
        if (url.endsWith(")") && !url.includes("(")) url = url.slice(0, -1);
        const href = safeHref(url);
        if (href) {
          flush();
          parent.append(link(href, [url]));
          i += url.length;
          continue;
        }
      }
    }
    buffer += c;
    i++;
  }
  flush();
  return parent;
}

const SPANS = [
  ["**", "strong"],
  ["__", "strong"],
  ["~~", "del"],
  ["*", "em"],
  ["_", "em"],
];

function emphasis(text, i) {
  for (const [mark, tag] of SPANS) {
    if (!text.startsWith(mark, i)) continue;
    const after = text[i + mark.length] ?? "";
    if (!after || /\s/.test(after) || after === mark[0]) continue;
    // Underscores inside words (snake_case) are not emphasis.
    if (mark[0] === "_" && WORD.test(text[i - 1] ?? "")) continue;
    let end = i + mark.length;
    for (let tries = 0; (end = text.indexOf(mark, end + 1)) > 0 && end < i + REACH && tries < 64; tries++) {
      const before = text[end - 1];
      const next = text[end + mark.length] ?? "";
      if (/\s/.test(before) || before === "\\") continue;
      if (mark.length === 1 && next === mark) {
        end++;
        continue;
      }
      if (mark[0] === "_" && WORD.test(next)) continue;
      return { tag, inner: text.slice(i + mark.length, end), end: end + mark.length };
    }
  }
  return null;
}

function bracketLink(text, at) {
  let depth = 0;
  let close = -1;
  for (let k = at; k < Math.min(text.length, at + REACH); k++) {
    if (text[k] === "\\") k++;
    else if (text[k] === "[") depth++;
    else if (text[k] === "]" && --depth === 0) {
      close = k;
      break;
    }
  }
  if (close < 0 || text[close + 1] !== "(") return null;
  const m = /^\(\s*<?([^\s<>()]*(?:\([^\s()]*\)[^\s<>()]*)*)>?(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)/.exec(text.slice(close + 1));
  if (!m) return null;
  return { label: text.slice(at + 1, close), href: m[1], end: close + 1 + m[0].length };
}
