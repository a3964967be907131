// Every pending approval in one queue docked above the prompt box (thumb reach), each with
// what exactly will happen (the diff, the full command, the folder), its risk, the time
// left before it is denied, and what "always" covers. Also the awareness around it: the
// tab title counts pending approvals, and a page in the background raises a system
// notification (only with permission already granted; asked for on a tap, never on load).
//
// Against approval fatigue (issue 11): several requests are selected and answered together
// (each still signed on its own by actions.decide; a risky one is never approved in bulk);
// a risky request (the host's tier) can be approved only after it has been shown for its
// cooldown, and with a second tap that says what makes it risky; tether's own "always
// allow" names its exact scope, and what is always allowed is listed and revocable in a panel.

import { h, label, list, motion, sessionRoot, str } from "./dom.js";
import { renderToolContent } from "./tools.js";

const queueEl = document.getElementById("approvals") ?? dock();

// A head with a Hide/Show toggle: the person may read the conversation before answering.
const toggle = h("button", { type: "button", class: "queue-toggle", "aria-expanded": "true", "aria-controls": "approvals" }, "Hide");
const head = h("div", { class: "queue-head" }, h("span", {}, ""), toggle);
queueEl?.prepend(head);
toggle.addEventListener("click", () => setCollapsed(toggle.getAttribute("aria-expanded") === "true"));

function setCollapsed(collapsed) {
  if (!queueEl) return;
  queueEl.toggleAttribute("data-collapsed", collapsed);
  toggle.setAttribute("aria-expanded", String(!collapsed));
  toggle.textContent = collapsed ? "Show" : "Hide";
}

// The queue's place in index.html; made here for a page that lacks it.
function dock() {
  const el = h("section", { id: "approvals", class: "queue", hidden: true, "aria-label": "Pending approvals" });
  const footer = document.querySelector("footer.composer");
  if (footer) footer.before(el);
  else document.body.append(el);
  return el;
}

const cards = new Map(); // approval id -> {el, expires (ms, this clock) or null, entry, tool}
const firstSeen = new Map(); // approval id -> Date.now() when first seen pending
// approval id -> Date.now() by which the host denies it, from the seconds it said were left when this page
// joined (a snapshot's or replay's `remaining`): a reload or a new device goes on counting, never restarts.
const deadlines = new Map();
const refusals = new Map(); // approval id -> {reason, retryAt (Date.now() ms or 0)}: the host refused our answer
const selected = new Set(); // approval ids ticked for a bulk answer
let lastRiskyApproval = 0; // Date.now() of this page's last approval of a risky request
let riskyBefore = { id: null, at: 0 }; // which request set it, and its value before (a refused one undoes it)
let bulkActions = null;
let ticker = 0;

// Answer several at once: approve skips the risky ones (each must be read and confirmed alone).
const bulkApprove = h("button", { type: "button", class: "btn primary", testid: "bulk-approve" }, "Approve selected");
const bulkDeny = h("button", { type: "button", class: "btn danger", testid: "bulk-deny" }, "Deny selected");
const bulkNote = h("p", { class: "always-note bulk-note" });
const bulkBar = h("div", { class: "bulk", hidden: true }, h("div", { class: "actions" }, bulkApprove, bulkDeny), bulkNote);
head.after(bulkBar);
bulkApprove.addEventListener("click", () => answerSelected(["allow_once"], false));
bulkDeny.addEventListener("click", () => answerSelected(["reject_once", "reject_always"], true));

// ACP option kinds -> the button's testid, default label and look; also its order.
const OPTION_BUTTONS = [
  ["allow_once", "approve-once", "Approve once", "primary"],
  ["reject_once", "deny", "Deny", "danger"],
  ["allow_always", "approve-always", "Always approve", "secondary"],
  ["reject_always", "deny-always", "Always deny", "secondary danger"],
];

const WRITES = new Set(["edit", "delete", "move"]);

const isRisky = (entry) => entry?.tier === "risky";

/** [level, what happens] for an approval: the host's tier if it gave one, else its kind and what its title says. */
export function risk(entry) {
  const kind = str(entry.kind, "other");
  const title = str(entry.title);
  if (isRisky(entry)) {
    const why = /— RISKY: (.+)$/.exec(title)?.[1] ?? /OUTSIDE the project: (.+)$/.exec(title)?.[1];
    return ["high", why ? `risky: ${why}` : "risky: network, installs, deletes or outside the project"];
  }
  if (/OUTSIDE the project/.test(title)) return ["high", "touches files outside the project"];
  if (/\(changes what runs\)/.test(title)) return ["high", "runs a command with variables that change what runs"];
  if (kind === "execute") return ["high", "runs a command on your computer"];
  if (kind === "delete") return ["high", "deletes files"];
  if (WRITES.has(kind)) return ["medium", "changes files in the project"];
  if (kind === "fetch") return ["medium", "reaches the network"];
  if (kind === "read" || kind === "search" || kind === "think") return ["low", "reads only"];
  return ["medium", "does something the agent did not classify"];
}

/** What choosing "always" covers, in words: tether's exact scope (host/grants.py), else the agent's own (policy.py, Grant). */
export function alwaysCovers(entry, option) {
  if (typeof option?.scope === "string") return `exactly ${option.scope}, in this session only (revocable under “Always allowed”)`;
  const kind = str(entry.kind, "other");
  const rest = "for the rest of this session, without asking again";
  if (WRITES.has(kind)) return `every later file change ${rest}, not only this one`;
  if (kind === "execute") return `every later command ${rest}, not only this one`;
  return `later ${label(kind) || "tool"} calls ${rest}`;
}

function countdown(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")} left`;
}

function tick() {
  const now = Date.now();
  for (const [id, { el, expires }] of cards) {
    const note = el.querySelector(".refused");
    if (note && refusals.has(id)) note.textContent = refusalText(refusals.get(id), now);
    const timer = el.querySelector(".timer");
    if (!timer || expires === null) continue;
    const left = expires - now;
    timer.textContent = left > 0 ? countdown(left) : "time is up: denying";
    timer.dataset.urgent = String(left < 60_000);
  }
}

function refresh() {
  const ids = [...cards.keys()];
  ids.forEach((id, index) => {
    const count = cards.get(id).el.querySelector(".q-count");
    if (count) count.textContent = ids.length > 1 ? `${index + 1} of ${ids.length}` : "";
  });
  if (queueEl) {
    queueEl.hidden = cards.size === 0;
    if (cards.size === 0) setCollapsed(false);
    head.firstChild.textContent = cards.size > 1 ? `${cards.size} approvals waiting` : "1 approval waiting";
    queueEl.toggleAttribute("data-many", cards.size > 1);
  }
  refreshBulk();
  const base = document.title.replace(/^\(\d+\) /, "");
  document.title = cards.size ? `(${cards.size}) ${base}` : base;
  clearInterval(ticker);
  if (cards.size) ticker = setInterval(tick, 1000);
  tick();
}

function notify(entry) {
  if (!document.hidden) return;
  navigator.vibrate?.([200, 100, 200]);
  if (typeof Notification === "undefined" || Notification.permission !== "granted") return;
  const options = { body: str(entry.title, "the agent asks"), tag: entry.id, requireInteraction: true, data: { url: location.href } };
  // A phone's browser (Chrome on Android) notifies only through the service worker (sw.js
  // brings the tab back on a tap); elsewhere the page may notify itself.
  const viaWorker = navigator.serviceWorker?.controller
    ? navigator.serviceWorker.getRegistration().then((r) => (r ? r.showNotification("Approval needed", options).then(() => true) : false))
    : Promise.resolve(false);
  viaWorker
    .catch(() => false)
    .then((shown) => {
      if (shown) return;
      const note = new Notification("Approval needed", options);
      note.addEventListener("click", () => {
        window.focus();
        note.close();
      });
    })
    .catch(() => undefined); // no way to notify here: the title still counts what waits
}

function askToNotify() {
  if (typeof Notification === "undefined" || Notification.permission !== "default") return null;
  const button = h("button", { type: "button", class: "notify-ask" }, "Alert me when the agent asks");
  button.addEventListener("click", () => {
    Notification.requestPermission().then(() => button.remove(), () => button.remove());
  });
  return button;
}

function card(entry, actions, tool) {
  const [level, what] = risk(entry);
  const options = list(entry.options).filter((o) => typeof o?.option_id === "string");
  const sent = actions.sent(entry.id);
  const buttons = [];
  const known = OPTION_BUTTONS.map(([kind]) => kind);
  // Options of a kind this viewer does not know still get a button: never leave one unanswerable.
  for (const [kind, testid, fallback, look] of [...OPTION_BUTTONS, [null, undefined, "Choose", "secondary"]]) {
    options
      .filter((o) => (kind ? o.kind === kind : !known.includes(o.kind)))
      .forEach((option, index) => {
        const button = h(
          "button",
          { type: "button", class: `btn ${look}`, testid: index === 0 ? testid : undefined, disabled: sent },
          str(option.name) || fallback,
        );
        const approving = option.kind === "allow_once" || option.kind === "allow_always";
        if (approving && (isRisky(entry) || refusals.has(entry.id))) guard(button, entry, level === "high" ? what : "");
        button.addEventListener("click", () => {
          if (approving && isRisky(entry) && !confirmed(button)) return;
          if (!actions.decide(entry.id, option.option_id)) return;
          if (approving && isRisky(entry)) {
            riskyBefore = { id: entry.id, at: lastRiskyApproval };
            lastRiskyApproval = Date.now();
          }
          for (const b of buttons) b.disabled = true;
          button.classList.add("chosen");
          refusals.delete(entry.id);
          button.closest(".approval")?.querySelector(".refused")?.remove();
        });
        buttons.push(button);
      });
  }
  const always = options.find((o) => o.kind === "allow_always");
  const pick = h("input", { type: "checkbox", class: "q-pick", testid: "approval-select", "aria-label": "Select for a bulk answer", disabled: sent });
  pick.checked = selected.has(entry.id);
  pick.addEventListener("change", () => {
    if (pick.checked) selected.add(entry.id);
    else selected.delete(entry.id);
    refreshBulk();
  });
  const content = list(tool?.content);
  const command = content.find((c) => c?.type === "terminal");
  const paths = list(tool?.locations).filter((p) => typeof p === "string" && p !== sessionRoot());
  return h(
    "section",
    { testid: "approval", class: "card approval", data: { id: entry.id, state: "pending", risk: level }, role: "group", "aria-label": `Approval needed: ${str(entry.title, "tool call")}` },
    h(
      "header",
      { class: "q-top" },
      h("label", { class: "q-select" }, pick),
      h("span", { class: "card-head" }, "Approval needed"),
      h("span", { class: "q-count" }),
      h("span", { class: "timer", role: "timer", "aria-live": "off" }),
    ),
    h("div", { class: "approval-title" }, str(entry.title, "tool call")),
    h("div", { class: "risk", data: { risk: level } }, h("strong", {}, `${level[0].toUpperCase()}${level.slice(1)} risk`), ` · ${label(entry.kind) || "tool"} · ${what}`),
    entry.source === "host" ? h("div", { class: "approval-kind" }, "Asked by tether: the agent did not ask for this itself.") : null,
    paths.length ? h("ul", { class: "locations" }, paths.map((p) => h("li", {}, p))) : null,
    // tether's own approval of a command names its folder in the title already.
    entry.kind === "execute" && entry.source !== "host" && sessionRoot() && !command ? h("div", { class: "approval-kind" }, `in ${sessionRoot()}`) : null,
    command ? h("div", { class: "approval-kind" }, `in ${sessionRoot() || "the project folder"}`) : null,
    h("div", { class: "q-detail" }, content.map((item, index) => detail(item, `${entry.id}/q${index}`))),
    refusalNote(entry.id),
    h("div", { class: "actions" }, buttons),
    always ? h("p", { class: "always-note" }, h("strong", {}, `“${str(always.name) || "Always approve"}”`), ` covers ${alwaysCovers(entry, always)}.`) : null,
    isRisky(entry) ? h("p", { class: "always-note risky-note" }, "Risky: approve takes a second tap, after a short wait, and never in bulk.") : null,
    cards.size === 0 ? askToNotify() : null, // asked once, on the first card
  );
}

// What will happen: a command not started yet is its command line alone (no "running…").
function detail(item, key) {
  if (item?.type !== "terminal" || item.output || typeof item.exit_code === "number") return renderToolContent(item, key);
  return h("div", { class: "terminal" }, h("div", { class: "term-cmd" }, h("span", { class: "prompt-mark", "aria-hidden": "true" }, "$ "), str(item.command)));
}

/** Why the host did not accept this page's answer, and when to tap again (the host's `refused`). */
function refusalNote(id) {
  const refused = refusals.get(id);
  if (!refused) return null;
  return h("p", { class: "always-note refused", role: "alert", testid: "approval-refused" }, refusalText(refused, Date.now()));
}

function refusalText({ reason, retryAt }, now) {
  const wait = Math.ceil((retryAt - now) / 1000);
  return `Not accepted: ${reason}. ${wait > 0 ? `Tap again in ${wait} s.` : "Tap again."}`;
}

/** When the host denies it, by this page's clock: from what the host said was left, else from when first seen. */
function expiresAt(entry) {
  if (deadlines.has(entry.id)) return deadlines.get(entry.id);
  const timeout = typeof entry.timeout === "number" && entry.timeout > 0 ? entry.timeout * 1000 : null;
  return timeout === null ? null : firstSeen.get(entry.id) + timeout;
}

/** Show (or update) a pending approval in the queue; `tool` is its tool call entry, if any. */
export function enqueue(entry, actions, tool) {
  const fresh = !firstSeen.has(entry.id);
  if (fresh) firstSeen.set(entry.id, Date.now());
  const el = card(entry, actions, tool);
  el.addEventListener("unfold", () => enqueue(entry, actions, tool));
  const old = cards.get(entry.id);
  if (old) old.el.replaceWith(el);
  else queueEl?.append(el);
  cards.set(entry.id, { el, entry, tool, expires: expiresAt(entry) });
  bulkActions = actions;
  if (fresh) setCollapsed(false); // a new request is always shown
  refresh();
  if (fresh) notify(entry);
}

/** The seconds each pending approval still waits, as the host counted when it sent a snapshot or replay. */
export function timeLeft(remaining) {
  if (!remaining || typeof remaining !== "object") return;
  const now = Date.now();
  for (const [id, seconds] of Object.entries(remaining)) {
    if (typeof seconds !== "number" || !(seconds >= 0)) continue;
    deadlines.set(id, now + seconds * 1000);
    const shown = cards.get(id);
    if (shown) shown.expires = deadlines.get(id);
  }
  tick();
}

/** The host refused this page's answer to `id` (`retry`: seconds until it would count): the card takes a tap again. */
export function refused(id, reason, retry, actions) {
  const shown = cards.get(id);
  if (!shown) return;
  const wait = typeof retry === "number" && retry > 0 ? retry * 1000 : 0;
  refusals.set(id, { reason: str(reason, "refused by the computer"), retryAt: wait ? Date.now() + wait : 0 });
  if (riskyBefore.id === id) lastRiskyApproval = riskyBefore.at; // it did not count: the host's pace is its own
  riskyBefore = { id: null, at: 0 };
  enqueue(shown.entry, actions, shown.tool);
}

/** Take an approval out of the queue (decided, expired, cancelled, or gone from a snapshot). */
export function dequeue(id) {
  const old = cards.get(id);
  deadlines.delete(id);
  refusals.delete(id);
  if (!old) return;
  old.el.remove();
  cards.delete(id);
  selected.delete(id);
  refresh();
}

/** Drop every queued approval not in `keep` (a set of ids). */
export function prune(keep) {
  for (const id of [...cards.keys()]) if (!keep.has(id)) dequeue(id);
  refresh();
}

/** Bring a queued approval into view (from its line in the transcript). */
export function reveal(id) {
  const found = cards.get(id);
  setCollapsed(false);
  found?.el.scrollIntoView({ block: "nearest", behavior: motion() });
  found?.el.querySelector("button:not(:disabled)")?.focus({ preventScroll: true });
}

// ---- several at once ------------------------------------------------------------------

function refreshBulk() {
  const ticked = [...selected].filter((id) => cards.has(id) && !bulkActions?.sent(id));
  const approvable = ticked.filter((id) => !isRisky(cards.get(id).entry));
  bulkBar.hidden = cards.size < 2 || ticked.length === 0;
  bulkApprove.textContent = `Approve ${approvable.length} selected`;
  bulkApprove.disabled = approvable.length === 0;
  bulkDeny.textContent = `Deny ${ticked.length} selected`;
  bulkDeny.disabled = ticked.length === 0;
  const risky = ticked.length - approvable.length;
  bulkNote.textContent = risky ? `${risky} risky ${risky > 1 ? "requests are" : "request is"} left out of “Approve”: answer ${risky > 1 ? "each" : "it"} on its own.` : "";
}

/** Answer every ticked request with its first option of `kinds` (each decision signed on its own). */
function answerSelected(kinds, riskyToo) {
  if (!bulkActions) return;
  for (const id of [...selected]) {
    const found = cards.get(id);
    if (!found || (!riskyToo && isRisky(found.entry)) || bulkActions.sent(id)) continue;
    const options = list(found.entry.options);
    const option = kinds.map((kind) => options.find((o) => o?.kind === kind)).find(Boolean);
    if (!option || !bulkActions.decide(id, option.option_id)) continue;
    selected.delete(id);
    for (const b of found.el.querySelectorAll(".actions button, .q-pick")) b.disabled = true;
  }
  refreshBulk();
}

// ---- a risky request: wait, then confirm ------------------------------------------------

/** Keep an approve button of a risky request disabled for its cooldown (and after the last risky approval),
 * and any approve button the host refused for a while until the time it named. */
function guard(button, entry, why) {
  const cooldown = isRisky(entry) && typeof entry.cooldown === "number" && entry.cooldown > 0 ? entry.cooldown * 1000 : 0;
  const since = isRisky(entry) ? Math.max(firstSeen.get(entry.id) ?? Date.now(), lastRiskyApproval) : 0;
  const readyAt = Math.max(since + cooldown, refusals.get(entry.id)?.retryAt ?? 0);
  button.dataset.why = why;
  const wait = readyAt - Date.now();
  if (wait <= 0) return;
  button.disabled = true;
  button.dataset.cooling = "true";
  setTimeout(() => {
    delete button.dataset.cooling;
    if (button.isConnected && !button.closest(".approval")?.querySelector(".chosen")) button.disabled = false;
  }, wait + 50); // the host counts from when it asked, a little before this page showed it
}

/** The stronger confirmation: the first tap only arms the button and says what is risky; the second approves. */
function confirmed(button) {
  if (button.dataset.armed === "true") return true;
  button.dataset.armed = "true";
  const label = button.textContent;
  button.textContent = `Tap again to approve: ${button.dataset.why || "risky"}`;
  setTimeout(() => {
    if (!button.isConnected) return;
    delete button.dataset.armed;
    button.textContent = label;
  }, 8000);
  return false;
}

// ---- what is always allowed (host/grants.py) -------------------------------------------

const allowedEl = h("details", { id: "allowed", class: "allowed", testid: "allowed", hidden: true }, h("summary", {}, "Always allowed"), h("ul", { class: "allowed-list" }));
queueEl?.before(allowedEl);

/** Show the "always allow" grants of this session (the host's `allowed` entry; null clears), each revocable. */
export function showAllowed(entry, actions) {
  const grants = list(entry?.grants).filter((g) => Number.isInteger(g?.number));
  allowedEl.hidden = grants.length === 0;
  allowedEl.querySelector("summary").textContent = `Always allowed in this session (${grants.length})`;
  allowedEl.querySelector("ul").replaceChildren(
    ...grants.map((grant) => {
      const revoke = h("button", { type: "button", class: "btn secondary", testid: "revoke-grant" }, "Revoke");
      revoke.addEventListener("click", () => {
        if (actions.revoke(grant.number)) revoke.disabled = true;
      });
      return h("li", { testid: "allowed-grant", data: { number: String(grant.number) } }, h("span", { class: "allowed-text" }, `#${grant.number} ${str(grant.text)}`), h("span", { class: "allowed-by" }, ` · ${str(grant.by)}`), revoke);
    }),
  );
}
