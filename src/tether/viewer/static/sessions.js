// The user's sessions, to switch between them: the ones this tab has opened, and the other
// live sessions of the computer this session runs on, which its host sends a device the user
// confirmed (message `sessions`, docs/protocol.md section 3; host/live.py).
//
// The tab's own are kept in sessionStorage, beside the join credential and resume secret
// app.js keeps there for each session: such a session can be reopened from this tab without
// its link, and from nowhere else. Only names are kept (title, agent, folder), never any of
// the conversation. The live ones come with their full link (its secrets stay in memory,
// never stored): this device is paired, so the other session admits it without a question.

import { h, str } from "./dom.js";

const KEY = "tether:sessions";
const KEPT = 12;
let live = []; // the host's other live sessions: {id, url, title, agent, cwd}

function known() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(KEY) ?? "[]");
    return Array.isArray(stored) ? stored.filter((s) => typeof s?.id === "string") : [];
  } catch {
    return [];
  }
}

const here = () => {
  const at = location.pathname.lastIndexOf("/s/");
  return at < 0 ? "" : location.pathname.slice(at + 3);
};

const button = h("button", { type: "button", class: "sessions-button", "aria-expanded": "false", "aria-controls": "sessions", hidden: true });
const panel = h("nav", { id: "sessions", class: "sessions", "aria-label": "Sessions in this tab", hidden: true });
document.querySelector("header.top [data-testid='connection-status']")?.before(button);
document.querySelector("header.top")?.after(panel);
button.addEventListener("click", () => {
  const open = button.getAttribute("aria-expanded") !== "true";
  button.setAttribute("aria-expanded", String(open));
  panel.hidden = !open;
});

// Only a link to a session page of this same relay is followed (the host says where its
// sessions are; a link elsewhere is dropped rather than trusted).
function sameRelay(url) {
  try {
    const target = new URL(url, location.href);
    return target.origin === location.origin && target.pathname.startsWith(location.pathname.slice(0, location.pathname.lastIndexOf("/s/") + 3));
  } catch {
    return false;
  }
}

function show(known) {
  const id = here();
  const liveIds = new Set(live.map((s) => s.id));
  const sessions = [
    ...known.filter((s) => !liveIds.has(s.id)).map((s) => ({ ...s, href: `../s/${encodeURIComponent(s.id)}`, live: s.id === id })),
    ...live.map((s) => ({ ...s, href: s.url, live: true })),
  ];
  button.textContent = `⇆ ${sessions.length}`; // short: the header is narrow on a phone
  button.setAttribute("aria-label", `Sessions · ${sessions.length}`);
  button.hidden = sessions.length < 2;
  panel.replaceChildren(
    h(
      "ul",
      {},
      sessions.map((s) =>
        h(
          "li",
          {},
          h(
            "a",
            { href: s.href, "data-testid": "session-link", "data-live": String(s.live), "aria-current": s.id === id ? "page" : undefined },
            h("span", { class: "session-title" }, str(s.title, "session")),
            h("span", { class: "session-about" }, [s.live ? "live" : "", str(s.agent), str(s.cwd)].filter(Boolean).join(" · ")),
          ),
        ),
      ),
    ),
  );
}

/** Note the session this page shows (from its snapshot's `session`); the list keeps its order. */
export function remember(session) {
  const id = here();
  if (!id) return;
  const entry = { id, title: str(session?.title), agent: str(session?.agent), cwd: str(session?.cwd) };
  const sessions = known();
  const at = sessions.findIndex((s) => s.id === id);
  if (at >= 0) sessions[at] = entry;
  else sessions.push(entry);
  if (sessions.length > KEPT) sessions.splice(0, sessions.length - KEPT);
  try {
    sessionStorage.setItem(KEY, JSON.stringify(sessions));
  } catch {
    // Storage full or refused: the list shows this page's session only.
  }
  show(sessions);
}

/** The other live sessions of this session's computer, as its host sent them (message `sessions`). */
export function showLive(sessions) {
  live = (Array.isArray(sessions) ? sessions : []).filter(
    (s) => typeof s?.id === "string" && typeof s.url === "string" && s.id !== here() && sameRelay(s.url),
  );
  show(known());
}

show(known());
