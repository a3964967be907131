"""The viewer as a person holds it: a 390x844 phone (and a 360x740 one) in real Chromium.

Each test drives the page against a real relay with the host played by the test
(FakeHost of test_viewer_page.py, the real sealed wire format), and checks what a person
sees: Markdown read as Markdown and inert, diffs that wrap with line numbers, command
output in colour, words for denied and stopped calls, the plan near the current turn,
one approval queue with risk and countdown, the tab title and a notification, no scroll
jumps while reading back, an installable app shell. One browser and one relay serve the
whole module; each test gets a fresh browser context.

Set TETHER_VIEWER_ARTIFACTS=DIR to keep screenshots of the main states (conversation,
pending approval with diff, command output, plan, ended, dark mode) in DIR.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.conftest import TETHER, RcRun, chromium, start_rc, stop
from tests.e2e.test_viewer_page import ADMISSIONS, OPTIONS, SESSION, WAIT_MS, FakeHost, message, open_session
from tether.protocol.messages import Append, Cancel, Decide, Entry, Prompt, Turn

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="module")]

PHONE = {"width": 390, "height": 844}
SMALL_PHONE = {"width": 360, "height": 740}
CWD = str(SESSION["cwd"])
STATIC = Path(__file__).parents[2] / "src" / "tether" / "viewer" / "static"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def relay_url() -> AsyncIterator[str]:
    """One embedded relay for the module (memory broker), serving the viewer."""
    from tether.relay.server import EmbeddedRelay, RelayConfig

    async with EmbeddedRelay(RelayConfig(host="127.0.0.1", port=0)) as relay:
        ADMISSIONS[relay.url] = relay.admission
        yield relay.url
        del ADMISSIONS[relay.url]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    """One Debian Chromium for the module (tests/conftest.py: chromium)."""
    async with chromium() as launched:
        yield launched


@contextlib.asynccontextmanager
async def phone(
    browser: Any, viewport: dict[str, int] = PHONE, quiet: tuple[str, ...] = (), **options: Any
) -> AsyncIterator[Any]:
    """A fresh phone-sized page; any script error or console error fails the test (``quiet``: expected ones)."""
    context = await browser.new_context(viewport=viewport, is_mobile=True, has_touch=True, **options)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda line: errors.append(line.text) if line.type == "error" else None)
    try:
        yield page
    finally:
        await context.close()
    assert [] == [e for e in errors if not any(q in e for q in quiet)]


def artifact(name: str) -> str | None:
    """Where to keep a picture named ``name`` (TETHER_VIEWER_ARTIFACTS, see module doc), or None."""
    folder = os.environ.get("TETHER_VIEWER_ARTIFACTS")
    if not folder:
        return None
    Path(folder).mkdir(parents=True, exist_ok=True)
    return str(Path(folder) / f"{name}.png")


async def shot(page: Any, name: str) -> None:
    """Keep a picture of the page for a reviewer."""
    if path := artifact(name):
        await page.screenshot(path=path)


def tool(
    entry_id: str, kind: str, status: str, title: str, *content: dict[str, Any], locations: tuple[str, ...] = ()
) -> dict[str, Any]:
    return {"id": entry_id, "type": "tool_call", "title": title, "kind": kind, "status": status,
            "locations": list(locations), "content": list(content)}  # fmt: skip


def terminal(output: str, exit_code: int | None = None, command: str = "pytest -q") -> dict[str, Any]:
    return {"type": "terminal", "terminal_id": "t1", "command": command, "output": output,
            "exit_code": exit_code, "truncated": False}  # fmt: skip


def diff(path: str, old: str | None, new: str) -> dict[str, Any]:
    return {"type": "diff", "path": path, "old_text": old, "new_text": new}


def approval(
    entry_id: str, tool_call_id: str | None, title: str, kind: str, state: str = "pending", **more: Any
) -> dict[str, Any]:
    return {"id": entry_id, "type": "approval", "tool_call_id": tool_call_id, "title": title, "kind": kind,
            "source": "agent", "options": OPTIONS, "state": state, "outcome": None, "decided_by": None,
            **more}  # fmt: skip


def plan(*steps: tuple[str, str]) -> dict[str, Any]:
    return {
        "id": "plan",
        "type": "plan",
        "entries": [{"content": c, "status": s, "priority": "medium"} for c, s in steps],
    }


MARKDOWN = """## What I changed
Use **bold**, `inline code` and *emphasis*; snake_case_names stay as they are.

```python
def greet(name):
    return f"hi {name}"  # a comment
```

- first
- [x] tested

| file | lines |
|------|------:|
| a.py | 12 |

[the docs](https://example.org/docs) [bad](javascript:window.pwned=1) [bad too](JaVaScRiPt:window.pwned=1)
<script>window.pwned=1</script> <img src=x onerror="window.pwned=1"> <b>not bold</b>"""


async def test_agent_markdown_renders_as_markdown_and_stays_inert(browser: Any, relay_url: str) -> None:
    """Agent Markdown shows as headings, code, lists, tables and safe links; HTML and javascript: links stay text."""
    from playwright.async_api import expect

    async with phone(browser) as page, FakeHost(relay_url) as host:
        thinking = message("t1", "thought", "\n\n".join(f"Thought {n}." for n in range(10)))
        await open_session(
            page, host, [message("m1", "user", "**as typed**"), thinking, message("m2", "agent", MARKDOWN)]
        )
        agent = page.locator('[data-testid="message"][data-role="agent"]:not([data-kind])')
        await expect(agent.locator("strong")).to_have_text("bold", timeout=WAIT_MS)
        await expect(agent.locator("h3")).to_have_text("What I changed")
        await expect(agent.locator("p code")).to_have_text("inline code")
        await expect(agent.locator("em")).to_have_text("emphasis")
        await expect(agent.locator("pre .tok-kw").first).to_have_text("def")
        await expect(agent.locator("pre .tok-com")).to_have_text("# a comment")
        await expect(agent.locator("li.task[data-done=true]")).to_contain_text("tested")
        await expect(agent.locator("td")).to_have_text(["a.py", "12"])
        links = agent.locator("a")
        await expect(links).to_have_count(1)
        assert "https://example.org/docs" == await links.get_attribute("href")
        assert "noopener" in (await links.get_attribute("rel") or "")
        await expect(agent).to_contain_text("bad too")
        await expect(agent).to_contain_text(
            '<script>window.pwned=1</script> <img src=x onerror="window.pwned=1"> <b>not bold</b>'
        )
        assert 0 == await page.locator("#entries script, #entries img, #entries b").count()
        assert await page.evaluate("window.pwned") is None
        await expect(page.locator('[data-role="user"]')).to_have_text("**as typed**")  # a person's words show as typed

        # The agent's thinking is folded to a few lines until tapped.
        thought = page.locator('[data-kind="thought"] .text')
        folded = "(el) => el.scrollHeight > el.clientHeight + 1"
        assert await thought.evaluate(folded)
        await page.get_by_role("button", name="Thinking").click()
        assert not await thought.evaluate(folded)

        # Streaming: a code fence opened in one chunk and closed in a later one.
        await host.send(Entry(entry=message("m3", "agent", "Running:\n```sh\n")))
        first_block = await page.wait_for_selector('[data-id="m3"] p')
        await host.send(Append(id="m3", text="ls -la\n"))
        await host.send(Append(id="m3", text="```\nall **good**"))
        last = agent.nth(1)
        await expect(last.locator("strong")).to_have_text("good", timeout=WAIT_MS)
        await expect(last.locator("pre")).to_have_text("ls -la")
        assert await first_block.evaluate("(p) => p.isConnected")  # blocks already shown are kept, not rebuilt

        # Once the stream ends the message is read whole: a loose list streamed in parts is one list.
        await host.send(Entry(entry=message("m4", "agent", "- first\n\n")))
        await host.send(Append(id="m4", text="- second"))
        await host.send(Turn(running=False, stop_reason="end_turn"))
        await expect(page.locator('[data-id="m4"] ul')).to_have_count(1, timeout=WAIT_MS)
        await expect(page.locator('[data-id="m4"] li')).to_have_count(2)
        await shot(page, "conversation")


LONG = "result = compute(" + ", ".join(f"argument_number_{n}" for n in range(30)) + ")"
NO_SPACES = "x" * 400


async def test_long_diff_lines_wrap_with_line_numbers(browser: Any, relay_url: str) -> None:
    """On 390 and 360 px wide phones a diff wraps long lines inside the screen and numbers each line."""
    from playwright.async_api import expect

    old = "import os\nvalue = 1\nprint(value)\n"
    new = f"import os\n{LONG}\n{NO_SPACES}\nprint(value)\n"
    edit = tool("tool:e1", "edit", "completed", "Edit main.py", diff(f"{CWD}/main.py", old, new))
    for viewport in (PHONE, SMALL_PHONE):
        async with phone(browser, viewport) as page, FakeHost(relay_url) as host:
            await open_session(page, host, [message("m1", "user", "refactor"), edit])
            added = page.locator(".diff .line.add")
            await expect(added).to_have_count(2, timeout=WAIT_MS)
            assert ["2", "3"] == [await line.get_attribute("data-n") for line in await added.all()]
            assert "2" == await page.locator(".diff .line.del").get_attribute("data-n")
            await expect(added.first).to_have_text(f"+ {LONG}")  # the number is not part of the copied text
            overflow = await page.evaluate(
                """() => {
                    const pre = document.querySelector(".diff pre");
                    const lines = [...document.querySelectorAll(".diff .line")];
                    return {
                        scrolls: pre.scrollWidth > pre.clientWidth,
                        beyond: lines.filter((l) => l.getBoundingClientRect().right > window.innerWidth).length,
                    };
                }"""
            )
            assert {"scrolls": False, "beyond": 0} == overflow
            if viewport == PHONE:
                await shot(page, "diff")


CLOSED = "The turn ended with this tool call pending: closed as not run."


async def test_command_card_has_no_stray_dot_shows_ansi_colours_and_folds(browser: Any, relay_url: str) -> None:
    """A command card lists no "." for the session folder, shows ANSI colours as spans (not HTML), folds long output."""
    from playwright.async_api import expect

    output = "".join(f"line {n}\n" for n in range(1, 101))
    output += "\x1b[31mred\x1b[0m plain \x1b[1;32mbold green\x1b[0m \x1b[38;5;208morange\x1b[0m "
    output += "\x1b[2K<img src=x onerror=window.pwned=2>\n"
    run = tool("tool:r1", "execute", "completed", "Run pytest -q", terminal(output, exit_code=1), locations=(CWD,))
    never = {**tool("tool:r2", "execute", "failed", "Run make"), "closed_by_host": CLOSED}
    async with phone(browser) as page, FakeHost(relay_url) as host:
        await open_session(page, host, [message("m1", "user", "run the tests"), run, never])
        await expect(page.get_by_test_id("tool-call").last.locator(".badge")).to_have_text("not run", timeout=WAIT_MS)
        await expect(page.get_by_test_id("tool-call").last).to_contain_text(CLOSED)
        card = page.get_by_test_id("tool-call").first
        await expect(card).to_contain_text("Run pytest -q", timeout=WAIT_MS)
        await expect(card.locator(".locations")).to_have_count(0)
        assert "." not in (await card.inner_text()).split()
        out = card.locator(".term-out")
        await expect(out.locator(".ansi-fg-1")).to_have_text("red")
        await expect(out.locator(".ansi-fg-2.ansi-bold")).to_have_text("bold green")
        await expect(out.locator("span", has_text="orange")).to_have_css("color", "rgb(255, 135, 0)")
        text = await out.inner_text()
        assert "\x1b" not in text and "[31m" not in text and "[2K" not in text
        assert "<img src=x onerror=window.pwned=2>" in text
        assert 0 == await page.locator("#entries img").count()
        assert await page.evaluate("window.pwned") is None
        await expect(card.locator(".term-foot")).to_have_text("exit 1 (error)")

        # Folded: the newest lines show, the rest on demand.
        assert "line 100" in text and "line 1\n" not in text
        await card.get_by_role("button", name="Show all 101 lines").click()
        await expect(card.locator(".term-out")).to_contain_text("line 1\nline 2\n")
        await shot(page, "command-output")


async def test_denied_call_says_denied_and_stopped_call_says_stopped(browser: Any, relay_url: str) -> None:
    """A call the person denies says denied; one cut off by stop says stopped; the plan shows it was abandoned."""
    from playwright.async_api import expect

    edit = tool("tool:a", "edit", "pending", "Edit notes.txt", diff(f"{CWD}/notes.txt", "old\n", "new\n"))
    run = tool("tool:b", "execute", "in_progress", "Run make", terminal("building…\n"))
    steps = plan(("Read the code", "completed"), ("Edit notes.txt", "in_progress"), ("Run make", "pending"))
    later = tool("tool:c", "execute", "pending", "Run make test")
    asking = approval("approval-1", "tool:a", "Edit notes.txt", "edit")
    async with phone(browser) as page, FakeHost(relay_url) as host:
        await open_session(page, host, [message("m1", "user", "go"), steps, edit, asking, run, later], running=True)
        badges = page.locator(".tool-head .badge")
        await expect(badges).to_have_text(["needs approval", "running", "queued"], timeout=WAIT_MS)

        await page.get_by_test_id("approval").get_by_test_id("deny").click()
        decide = await host.wait_for_kind(Decide)
        assert isinstance(decide, Decide) and ("approval-1", "reject") == (decide.approval_id, decide.option_id)
        await host.send(Entry(entry={**asking, "state": "decided", "outcome": "reject", "decided_by": "viewer"}))
        await host.send(Entry(entry={**edit, "status": "failed"}))
        await expect(badges.first).to_have_text("denied", timeout=WAIT_MS)
        await expect(page.get_by_test_id("approval-outcome")).to_have_text("Denied (viewer)")

        # Stop tapped: the agent fails its running call and says so; the host closes the call
        # that never started, then says the turn was cancelled.
        await page.get_by_test_id("stop").click()
        assert isinstance(await host.wait_for_kind(Cancel), Cancel)
        await host.send(Entry(entry={**run, "status": "failed"}))
        await host.send(Entry(entry=message("m9", "agent", "Cancelled.")))
        closed = "The turn ended with this tool call pending: closed as not run."
        await host.send(Entry(entry={**later, "status": "failed", "closed_by_host": closed}))
        await host.send(Turn(running=False, stop_reason="cancelled"))
        await expect(badges).to_have_text(["denied", "stopped", "stopped"], timeout=WAIT_MS)
        await expect(page.locator(".tool-note")).to_have_count(0)  # "stopped" says it all
        await expect(page.get_by_test_id("plan")).to_have_attribute("data-state", "abandoned")
        await expect(page.get_by_test_id("plan")).to_contain_text("abandoned")


async def test_plan_stays_near_the_current_turn_and_updates_in_place(browser: Any, relay_url: str) -> None:
    """By turn 7 the plan made in turn 1 sits under the current prompt, in view, as one checklist updated in place."""
    from playwright.async_api import expect

    chatter = "\n\n".join(f"Paragraph {n} of a long answer that fills the phone screen." for n in range(12))
    entries: list[dict[str, Any]] = []
    for turn in range(1, 8):
        entries.append({**message(f"u{turn}", "user", f"turn {turn}"), "by": "viewer"})
        if turn == 1:
            entries.append(plan(("Read", "in_progress"), ("Change", "pending"), ("Test", "pending")))
        entries.append(message(f"a{turn}", "agent", chatter))
    async with phone(browser) as page, FakeHost(relay_url) as host:
        await open_session(page, host, entries, running=True)
        the_plan = page.get_by_test_id("plan")
        await expect(the_plan).to_contain_text("0 of 3", timeout=WAIT_MS)
        await host.send(Entry(entry=plan(("Read", "completed"), ("Change", "in_progress"), ("Test", "pending"))))
        await expect(the_plan).to_contain_text("1 of 3 · in progress", timeout=WAIT_MS)
        await expect(the_plan).to_have_count(1)
        await expect(the_plan.locator("li[data-status=completed]")).to_have_text("✓Read")
        assert "u7" == await the_plan.evaluate("(el) => el.previousElementSibling.dataset.id")
        await page.locator('[data-id="a7"]').scroll_into_view_if_needed()
        await page.evaluate("document.getElementById('scroller').scrollTop = 1e9")
        await expect(the_plan).to_be_in_viewport()
        await shot(page, "plan")
        await host.send(Turn(running=False, stop_reason="cancelled"))
        await expect(the_plan).to_contain_text("abandoned", timeout=WAIT_MS)


async def test_approval_queue_shows_what_risk_time_left_and_what_always_covers(browser: Any, relay_url: str) -> None:
    """One queue at thumb height: command or diff, risk, countdown, what "always" covers; the title counts them."""
    from playwright.async_api import expect

    run = tool("tool:r", "execute", "pending", "Run rm -rf build && make", terminal("", command="rm -rf build && make"))
    edit = tool("tool:e", "edit", "pending", "Edit notes.txt", diff(f"{CWD}/notes.txt", "old words\n", "new words\n"))
    asks = [approval("approval-1", "tool:r", "Run rm -rf build && make", "execute", timeout=600),
            approval("approval-2", "tool:e", "Edit notes.txt", "edit", timeout=45)]  # fmt: skip
    async with phone(browser, color_scheme="dark") as page, FakeHost(relay_url) as host:
        await open_session(page, host, [message("m1", "user", "clean and edit"), run, edit, *asks], running=True)
        cards = page.get_by_test_id("approval")
        await expect(cards).to_have_count(2, timeout=WAIT_MS)
        await expect(page.locator("#approvals")).to_contain_text("2 approvals waiting")
        first, second = cards.nth(0), cards.nth(1)
        await expect(first).to_contain_text("High risk · execute · runs a command on your computer")
        await expect(first.locator(".term-cmd")).to_have_text("$ rm -rf build && make")
        await expect(first).to_contain_text(f"in {CWD}")
        await expect(first).not_to_contain_text("running")  # it has not started: it waits for this answer
        await expect(first.locator(".timer")).to_have_text(re.compile(r"^(10:00|9:5\d) left$"))
        await expect(second).to_contain_text("Medium risk · edit · changes files in the project")
        await expect(second.locator(".line.add")).to_have_text("+ new words")
        await expect(second.locator(".line mark")).to_have_text(["old", "new"])  # what changed within the line
        await expect(second.locator(".always-note")).to_contain_text(
            "“Always allow” covers every later file change for the rest of this session"
        )
        timer = second.locator(".timer")
        await expect(timer).to_have_attribute("data-urgent", "true")
        shown = await timer.inner_text()
        await expect(timer).not_to_have_text(shown, timeout=WAIT_MS)  # it counts down
        assert (await page.title()).startswith("(2) ")
        assert "rgb(17, 19, 24)" == await page.evaluate("getComputedStyle(document.body).backgroundColor")  # dark theme
        await shot(page, "approval-dark")

        # The queue folds away to read the conversation; the transcript's Review brings it back.
        await page.get_by_role("button", name="Hide").click()
        await expect(cards.first).to_be_hidden()
        await expect(page.locator("#approvals")).to_contain_text("2 approvals waiting")
        await page.locator(".approval.stub").first.get_by_role("button", name="Review").click()
        await expect(cards.first).to_be_visible()

        # Large buttons, low on the screen where a thumb reaches, on a 390 and a 360 px phone.
        for viewport in (SMALL_PHONE, PHONE):
            await page.set_viewport_size(viewport)
            await second.scroll_into_view_if_needed()
            for testid in ("approve-once", "deny", "approve-always"):
                box = await second.get_by_test_id(testid).bounding_box()
                assert box is not None and box["height"] >= 48 and box["y"] > viewport["height"] / 2
                assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"]
        await second.get_by_test_id("approve-once").click()
        decide = await host.wait_for_kind(Decide)
        assert isinstance(decide, Decide) and "approval-2" == decide.approval_id
        await host.send(Entry(entry={**asks[1], "state": "decided", "outcome": "allow", "decided_by": "viewer"}))
        await expect(cards).to_have_count(1, timeout=WAIT_MS)
        assert (await page.title()).startswith("(1) ")


SPY = """
Object.defineProperty(Document.prototype, "hidden", { get: () => true });
window.__notes = [];
ServiceWorkerRegistration.prototype.showNotification = function (title, options) {
  window.__notes.push([title, options?.body]);
  return Promise.resolve();
};
const Real = window.Notification;
window.Notification = class extends Real {
  constructor(title, options) { window.__notes.push([title, options?.body]); super(title, options); }
};
"""


async def test_empty_session_hints_and_a_background_tab_is_told_an_approval_waits(browser: Any, relay_url: str) -> None:
    """An empty session says what to do; in the background an approval notifies and counts in the title."""
    from playwright.async_api import expect

    async with phone(browser, permissions=["notifications"]) as page, FakeHost(relay_url) as host:
        await page.add_init_script(SPY)
        await open_session(page, host, [])
        empty = page.locator("#scroller .empty")
        await expect(empty).to_contain_text("Nothing here yet", timeout=WAIT_MS)
        await expect(empty).to_contain_text(CWD)
        await expect(empty).not_to_contain_text("Waiting for the conversation")

        await host.send(Entry(entry=approval("approval-1", None, "Write notes.txt", "edit", timeout=600)))
        await expect(page.get_by_test_id("approval")).to_have_count(1, timeout=WAIT_MS)
        assert [["Approval needed", "Write notes.txt"]] == await page.evaluate("window.__notes")
        assert (await page.title()).startswith("(1) ")


async def reading_position(page: Any, anchor: Any) -> tuple[float, float]:
    """The scroller's offset and where ``anchor`` sits on the screen."""
    box = await anchor.bounding_box()
    assert box is not None
    return await page.evaluate("document.getElementById('scroller').scrollTop"), box["y"]


async def test_reading_back_is_never_moved_and_jump_to_latest_returns(browser: Any, relay_url: str) -> None:
    """While the person reads back, streaming and new entries do not move the view; jump-to-latest brings them down."""
    from playwright.async_api import expect

    entries = [message(f"a{n}", "agent", f"Answer {n}.\n\nWith a second paragraph.") for n in range(30)]
    async with phone(browser) as page, FakeHost(relay_url) as host:
        await open_session(page, host, entries, running=True)
        await expect(page.get_by_test_id("message")).to_have_count(30, timeout=WAIT_MS)
        jump = page.locator("#jump")
        await expect(jump).to_be_hidden()
        await page.evaluate("document.getElementById('scroller').scrollTop = 300")
        await expect(jump).to_be_visible(timeout=WAIT_MS)
        anchor = page.locator('[data-id="a6"]')
        before = await reading_position(page, anchor)

        for n in range(5):
            await host.send(Append(id="a29", text=f"\n\nMore streamed text {n}, **bold** even."))
        await host.send(Entry(entry=tool("tool:x", "execute", "in_progress", "Run make", terminal("make: ok\n" * 30))))
        await host.send(Entry(entry=message("a30", "agent", "The newest answer.")))
        await expect(page.get_by_test_id("message")).to_have_count(32, timeout=WAIT_MS)
        await expect(page.locator('[data-id="a29"]')).to_contain_text("More streamed text 4")
        after = await reading_position(page, anchor)
        assert before == after

        await jump.click()
        await expect(jump).to_be_hidden(timeout=WAIT_MS)
        await expect(page.locator('[data-id="a30"]')).to_be_in_viewport(timeout=WAIT_MS)


async def test_prompts_tell_their_screen_and_modes_show_once(browser: Any, relay_url: str) -> None:
    """Prompts tell their screen; modes offered twice show once; "/" offers the agent's commands; the banner stays."""
    from playwright.async_api import expect

    controls = {
        "id": "controls", "type": "controls", "remote": True,
        "modes": {"current": "default", "available": [
            {"id": "default", "name": "Default", "description": None, "self_approving": False},
            {"id": "plan", "name": "Plan", "description": None, "self_approving": False}]},
        "options": [
            {"id": "mode", "name": "Mode", "type": "select", "current": "default", "self_approving_values": [],
             "choices": [{"value": "default", "name": "Default"}, {"value": "plan", "name": "Plan"}]},
            {"id": "model", "name": "Model", "type": "select", "current": "small", "self_approving_values": [],
             "choices": [{"value": "small", "name": "Small"}, {"value": "large", "name": "Large"}]},
        ],
        "commands": [{"name": "review", "description": "Review the changes", "hint": "what to look at"},
                     {"name": "init", "description": "Write AGENTS.md", "hint": None}],
    }  # fmt: skip
    banner = {**message("banner", "system", "⚠ The agent is in mode 'auto': it approves its own edits"), "on": True}
    prompts = [
        {**message("m1", "user", "from the keyboard"), "by": "terminal"},
        {**message("m2", "user", "from my phone"), "by": "viewer"},
    ]
    async with phone(browser) as page, FakeHost(relay_url) as host:
        await open_session(page, host, [banner, *prompts, controls])
        users = page.locator('[data-testid="message"][data-role="user"]')
        await expect(users).to_have_count(2, timeout=WAIT_MS)
        assert ["terminal", "viewer"] == [await u.get_attribute("data-by") for u in await users.all()]
        await expect(users.nth(0)).to_contain_text("typed at the terminal")
        await expect(users.nth(1)).to_contain_text("sent from the app")
        backgrounds = [await u.evaluate("(el) => getComputedStyle(el).backgroundColor") for u in await users.all()]
        assert backgrounds[0] != backgrounds[1]
        await expect(page.get_by_test_id("mode-select")).to_have_count(1)
        await expect(page.get_by_test_id("option-select")).to_have_attribute("data-option-id", "model")
        assert "sticky" == await page.locator('[data-id="banner"]').evaluate("(el) => getComputedStyle(el).position")

        # Slash commands: "/" lists the agent's commands; a tap fills the box.
        box = page.get_by_test_id("prompt-input")
        await box.press_sequentially("/")
        await expect(page.get_by_test_id("command")).to_have_count(2)
        await box.press("ArrowDown")
        await box.press("Enter")  # takes the chosen command; sends nothing
        await expect(box).to_have_value("/init ")
        await box.fill("/re")
        await expect(page.get_by_test_id("command")).to_have_text(["/reviewReview the changes (what to look at)"])
        await page.get_by_test_id("command").click()
        await expect(box).to_have_value("/review ")
        await expect(page.get_by_test_id("command")).to_have_count(0)
        await box.press_sequentially("the diff")
        await box.press("Enter")
        assert Prompt(text="/review the diff") == await host.wait_for_kind(Prompt)
        await host.close()
        await expect(page.get_by_test_id("connection-status")).to_have_text("ended", timeout=WAIT_MS)
        await shot(page, "ended")


async def test_installable_app_shell_works_offline_and_keeps_no_session_data(browser: Any, relay_url: str) -> None:
    """Manifest and icons load; the service worker keeps the shell (page, scripts) only, and the page opens offline."""
    from playwright.async_api import expect

    async with phone(browser, quiet=("WebSocket", "ERR_INTERNET_DISCONNECTED")) as page, FakeHost(relay_url) as host:
        await open_session(page, host, [message("m1", "agent", "a secret answer")])
        await expect(page.get_by_test_id("message")).to_have_count(1, timeout=WAIT_MS)
        manifest = await page.evaluate(
            """async () => {
                const href = document.querySelector('link[rel="manifest"]').href;
                const manifest = await (await fetch(href)).json();
                const sizes = [];
                for (const icon of manifest.icons) {
                    const image = new Image();
                    image.src = new URL(icon.src, href).href;
                    await image.decode();
                    sizes.push(`${icon.sizes}:${image.naturalWidth}x${image.naturalHeight}`);
                }
                const start = new URL(manifest.start_url, href).href;
                return { name: manifest.name, display: manifest.display, sizes, start };
            }"""
        )
        sizes = ["any:512x512", "192x192:192x192", "512x512:512x512", "512x512:512x512"]
        start = manifest.pop("start")
        assert {"name": "tether", "display": "standalone", "sizes": sizes} == manifest
        landing = await page.context.new_page()  # where the installed app starts: how to open a session
        await landing.goto(start)
        await expect(landing.locator("h2")).to_have_text("Open a session")
        await expect(landing.locator("code").first).to_have_text("tether rc")
        await landing.close()
        scope = await page.evaluate("navigator.serviceWorker.ready.then((r) => r.scope)")
        assert relay_url.rstrip("/") + "/" == scope
        await page.reload()
        await expect(page.get_by_test_id("prompt-input")).to_be_visible(timeout=WAIT_MS)
        assert await page.evaluate("navigator.serviceWorker.controller !== null")
        kept = await page.evaluate(
            "caches.keys().then((keys) => Promise.all(keys.map((k) => caches.open(k).then((c) => c.keys()))))"
            ".then((lists) => lists.flat().map((r) => r.url))"
        )
        assert kept and all(url.startswith(relay_url.rstrip("/") + "/assets/") for url in kept)
        assert not [url for url in kept if host.session_id in url]

        await page.context.set_offline(True)
        await page.reload()
        await expect(page.get_by_test_id("prompt-input")).to_be_visible(timeout=WAIT_MS)
        await expect(page.locator("h1")).to_have_text("tether")
        await expect(page.get_by_test_id("message")).to_have_count(0)  # nothing of the session was kept
        await shot(page, "offline-shell")


async def test_everything_the_page_loads_fits_the_budget(relay_url: str) -> None:
    """What the relay sends for the page, every file it names and the service worker's shell: under 150 KB."""
    import httpx

    base = relay_url.rstrip("/")
    async with httpx.AsyncClient(headers={"Accept-Encoding": "gzip"}) as client:
        page = await client.get(f"{base}/s/{'x' * 22}")
        shell = re.search(r"const SHELL = \[(.*?)\];", (STATIC / "sw.js").read_text(encoding="utf-8"), re.S)
        assert shell is not None
        names = set(re.findall(r'"\.\./assets/([^"]+)"', page.text)) | set(re.findall(r'"([^"]+)"', shell.group(1)))
        names.add("sw.js")
        sent = page.num_bytes_downloaded
        for name in sorted(names):
            response = await client.get(f"{base}/assets/{name}")
            assert 200 == response.status_code, name
            sent += response.num_bytes_downloaded
    assert sent < 150 * 1024, f"{sent} bytes over the wire"


TIMER = '[data-testid="approval"] .timer'


def trusted(folder: Path, env: dict[str, str]) -> Path:
    """A new project folder, trusted (as the ``project`` fixture's)."""
    folder.mkdir()
    subprocess.run([*TETHER, "trust", str(folder)], env=env, check=True, capture_output=True)
    return folder


async def test_a_real_session_on_a_phone(
    browser: Any, rc: RcRun, relay: str, tether_env: dict[str, str], tmp_path: Path
) -> None:
    """tether rc, scripted agent: the host's countdown, colour output, denied in words; a tab switches sessions."""
    from playwright.async_api import expect

    async with phone(browser) as page:
        await page.goto(rc.url)
        await expect(page.get_by_test_id("connection-status")).to_contain_text("connected", timeout=WAIT_MS)
        box = page.get_by_test_id("prompt-input")
        await box.fill(r"run printf '\033[32mall green\033[0m\n'")
        await box.press("Enter")
        card = page.get_by_test_id("approval")
        await expect(card.locator(".timer")).to_have_text(re.compile(r"^(10:00|9:5\d) left$"), timeout=WAIT_MS)
        # Reloaded after a second or more, the countdown goes on from the host's time left, never the whole again.
        await expect(card.locator(".timer")).to_have_text(re.compile(r"^9:5\d left$"), timeout=WAIT_MS)
        await page.reload()
        shown = await page.wait_for_function(f"() => document.querySelector('{TIMER}')?.textContent", timeout=WAIT_MS)
        first = await shown.json_value()
        assert re.fullmatch(r"9:5\d left", first), first  # its first text, before any tick (it was 10:00 again)
        await expect(card).to_contain_text("High risk")
        await expect(page.locator('[data-role="user"]')).to_have_attribute("data-by", "viewer")
        await card.get_by_test_id("approve-once").click()
        await expect(page.locator(".term-out .ansi-fg-2")).to_have_text("all green", timeout=WAIT_MS)
        await expect(page.get_by_test_id("working")).to_be_hidden(timeout=WAIT_MS)

        await box.fill("write notes.txt hello")
        await box.press("Enter")
        await page.get_by_test_id("approval").get_by_test_id("deny").click()
        badge = page.get_by_test_id("tool-call").last.locator(".tool-head .badge")
        await expect(badge).to_have_text("denied", timeout=WAIT_MS)
        assert not (await page.title()).startswith("(")  # nothing waits any more

        # A second session opened in the same tab: the header lists both, and a tap switches back.
        second = start_rc(trusted(tmp_path / "other-project", tether_env), tether_env, relay)
        try:
            await page.goto(second.url)
            await expect(page.locator("h1")).to_have_text("other-project", timeout=WAIT_MS)
            sessions = page.get_by_role("button", name="Sessions · 2")
            await sessions.click()
            await shot(page, "sessions")
            await page.get_by_role("link", name=re.compile(r"^project")).click()
            await expect(page.locator("h1")).to_have_text("project", timeout=WAIT_MS)
            await expect(page.get_by_test_id("connection-status")).to_contain_text("connected", timeout=WAIT_MS)
            await expect(page.locator(".term-out .ansi-fg-2")).to_have_text("all green")  # its conversation is back
        finally:
            stop(second.process)


AXE = Path(__file__).parent / "vendor" / "axe-core-4.14.1.min.js"


DESKTOP = {"width": 1280, "height": 800}


@pytest.mark.parametrize(("scheme", "viewport"), [("light", PHONE), ("dark", PHONE), ("light", DESKTOP)])
async def test_no_serious_accessibility_violations(
    browser: Any, relay_url: str, scheme: str, viewport: dict[str, int]
) -> None:
    """axe-core (vendored) finds no serious or critical violation on a busy page, in either theme, phone or desktop."""
    from playwright.async_api import expect

    run = tool(
        "tool:r", "execute", "completed", "Run make", terminal("\x1b[32mok\x1b[0m\n", exit_code=0), locations=(CWD,)
    )
    edit = tool("tool:e", "edit", "pending", "Edit notes.txt", diff(f"{CWD}/notes.txt", "old\n", "new\n"))
    entries = [
        {**message("m1", "user", "tidy up"), "by": "terminal"},
        plan(("Read", "completed"), ("Edit", "in_progress")),
        message("m2", "agent", MARKDOWN),
        run,
        edit,
        approval("approval-1", "tool:e", "Edit notes.txt", "edit", timeout=600),
    ]
    async with phone(browser, viewport, color_scheme=scheme) as page, FakeHost(relay_url) as host:
        await open_session(page, host, entries, running=True)
        await expect(page.get_by_test_id("approval")).to_have_count(1, timeout=WAIT_MS)
        if viewport == DESKTOP:  # one readable column, the queue included
            for part in ("#entries", "#approvals .approval"):
                box = await page.locator(part).bounding_box()
                assert box is not None and box["width"] <= 740 and box["x"] >= (DESKTOP["width"] - 740) / 2 - 1
            await shot(page, "desktop")
        await page.evaluate(AXE.read_text(encoding="utf-8"))
        violations = await page.evaluate(
            """async () => (await axe.run(document)).violations
                .filter((v) => v.impact === "serious" || v.impact === "critical")
                .map((v) => `${v.id}: ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")}`)"""
        )
        assert [] == violations
        assert await page.evaluate("axe.run(document).then((r) => r.passes.some((p) => p.id === 'color-contrast'))")
