// The agent's own controls (docs/protocol.md "Entries": controls): the bar of modes and
// options above the prompt box, and its slash commands offered when "/" is typed.

import { h, list, str } from "./dom.js";

const SELF = " — approves by itself";

/**
 * The children of the controls bar (empty: nothing to switch). A change is sent with
 * `actions.setMode(id)` / `actions.setOption(id, value)` and the control goes back to the
 * current value: only the host's next controls entry shows the change (it may refuse).
 */
export function renderControls(entry, actions) {
  commands = list(entry?.commands).filter((c) => typeof c?.name === "string" && c.name);
  suggest();
  const modes = entry?.modes ?? {};
  const remote = entry?.remote === true;
  const items = [];
  const available = list(modes.available).filter((m) => typeof m?.id === "string");
  const modeIds = available.map((m) => m.id).sort().join("\n");
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
      const values = list(option.choices).map((c) => c?.value).filter((v) => typeof v === "string");
      // An agent may offer its modes twice (as modes and as a config option "mode"): show one control.
      if (available.length && (/^mode$/i.test(option.id) || /^mode$/i.test(name) || values.sort().join("\n") === modeIds)) continue;
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

// ---- slash commands (controls entry: commands): typed "/" shows the agent's commands ----

let commands = [];
const input = document.querySelector('[data-testid="prompt-input"]');
const menu = input ? h("div", { id: "commands", class: "commands", role: "listbox", "aria-label": "The agent's commands", hidden: true }) : null;
input?.closest(".prompt-row")?.before(menu);

function suggest() {
  if (!input || !menu) return;
  const typed = /^\/(\S*)$/.exec(input.value);
  const found = typed ? commands.filter((c) => c.name.startsWith(typed[1])).slice(0, 8) : [];
  menu.replaceChildren(
    ...found.map((command) => {
      const about = [str(command.description), str(command.hint) ? `(${command.hint})` : ""].filter(Boolean).join(" ");
      const button = h(
        "button",
        { type: "button", role: "option", class: "command", testid: "command" },
        h("span", { class: "command-name" }, `/${command.name}`),
        about ? h("span", { class: "command-about" }, about) : null,
      );
      button.addEventListener("click", () => {
        input.value = `/${command.name} `;
        input.dispatchEvent(new Event("input")); // the box resizes, the list closes
        input.focus();
      });
      return button;
    }),
  );
  menu.hidden = found.length === 0;
  pick(found.length ? 0 : -1);
}
input?.addEventListener("input", suggest);

// Keys while the list shows: up and down move the choice, Enter or Tab takes it (before
// app.js would send the bare "/"), Escape closes the list. This module's listener is
// registered before app.js's, so it can stop the Enter.
let chosen = -1;
function pick(index) {
  const options = menu ? [...menu.children] : [];
  chosen = options.length ? (index + options.length) % options.length : -1;
  options.forEach((option, at) => {
    option.id = `command-${at}`;
    option.setAttribute("aria-selected", String(at === chosen));
  });
  if (chosen >= 0) input.setAttribute("aria-activedescendant", `command-${chosen}`);
  else input.removeAttribute("aria-activedescendant");
}
input?.addEventListener("keydown", (event) => {
  if (!menu || menu.hidden || chosen < 0 || event.isComposing) return;
  if (event.key === "ArrowDown" || event.key === "ArrowUp") pick(chosen + (event.key === "ArrowDown" ? 1 : -1));
  else if (event.key === "Enter" || event.key === "Tab") menu.children[chosen]?.click();
  else if (event.key === "Escape") menu.hidden = true;
  else return;
  event.preventDefault();
  event.stopImmediatePropagation();
});
