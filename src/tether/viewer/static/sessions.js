// The sessions this tab has opened, to switch between them (until accounts list a
// person's live sessions, this browser tab is what knows them). Kept in sessionStorage,
// beside the join credential and resume secret app.js keeps there for each session: a
// session listed here can be reopened from this tab without its link, and from nowhere
// else. Only names are kept (title, agent, folder), never any of the conversation.

import { h, str } from "./dom.js";

const KEY = "tether:sessions";
const KEPT = 12;

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

function show(sessions) {
  const id = here();
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
            { href: `../s/${encodeURIComponent(s.id)}`, "aria-current": s.id === id ? "page" : undefined },
            h("span", { class: "session-title" }, str(s.title, "session")),
            h("span", { class: "session-about" }, [str(s.agent), str(s.cwd)].filter(Boolean).join(" · ")),
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

show(known());
