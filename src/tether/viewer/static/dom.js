// Small DOM helpers shared by the viewer's renderers. Text from the wire only ever
// becomes text nodes (append / textContent), never markup.

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

export const str = (value, fallback = "") => (typeof value === "string" ? value : fallback);
export const list = (value) => (Array.isArray(value) ? value : []);
export const label = (value) => str(value).replaceAll("_", " ");

// Paths inside the session's folder show relative to it: phones have little room.
let root = "";
export function setRoot(cwd) {
  root = typeof cwd === "string" && cwd ? `${cwd.replace(/\/+$/, "")}/` : "";
}
export const sessionRoot = () => root.slice(0, -1);
export function shortPath(path) {
  const text = str(path);
  if (!root) return text;
  return text === root.slice(0, -1) ? "." : text.startsWith(root) ? text.slice(root.length) : text;
}

// Folded long content remembers being opened across re-renders (a card is rebuilt on each update).
const opened = new Set();

/**
 * `items` (nodes, one per line or row) shown whole up to `limit`; past it only `limit` of
 * them (the last ones if `tail`, else the first) and a button to show all.
 */
export function fold(key, items, limit, tail, noun = "lines") {
  if (items.length <= limit || opened.has(key)) return { shown: items, more: null };
  const shown = tail ? items.slice(-limit) : items.slice(0, limit);
  const more = h("button", { type: "button", class: "fold", "aria-expanded": "false" }, `Show all ${items.length} ${noun}`);
  more.addEventListener("click", () => {
    opened.add(key);
    more.dispatchEvent(new CustomEvent("unfold", { bubbles: true, detail: key }));
  });
  return { shown, more };
}

/** "smooth", unless the person asked the system for less motion. */
export const motion = () => (matchMedia("(prefers-reduced-motion: reduce)").matches ? "auto" : "smooth");
