"""How fast the viewer is ready on a mid-range phone over a poor network.

Debian's Chromium at 390x844 opens a session page served by an embedded relay on
127.0.0.1, with the CPU slowed 4x (a mid-range phone) and the network shaped like a slow
4G link (150 ms round trip, 1.6 Mbit/s down, 750 kbit/s up). Reported: the median time to
DOMContentLoaded (every module script has run: the page answers taps) and to load, first
on an empty cache and then with the service worker's app shell warm, and the bytes sent
over the wire. Also: the time to render a 13 KB Markdown answer streamed in 3000 chunks
(render.js parses only what is new), and of 4 x 60 KB of unmatched Markdown delimiters, on
the same slowed CPU.
Run: ``.venv/bin/python benchmarks/viewer_load.py``.
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
from typing import Any

from playwright.async_api import async_playwright

from tether.relay.server import EmbeddedRelay, RelayConfig

RUNS = 5
SLOW_4G = {"offline": False, "latency": 150, "downloadThroughput": 1_600_000 / 8, "uploadThroughput": 750_000 / 8}
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


async def measure(context: Any, url: str) -> dict[str, float]:
    page = await context.new_page()
    cdp = await context.new_cdp_session(page)
    await cdp.send("Network.enable")
    await cdp.send("Network.emulateNetworkConditions", SLOW_4G)
    await cdp.send("Emulation.setCPUThrottlingRate", {"rate": 4})
    await page.goto(url, wait_until="load")
    timing = await page.evaluate(
        """() => {
            const nav = performance.getEntriesByType("navigation")[0];
            const files = performance.getEntriesByType("resource");
            const sent = files.reduce((n, r) => n + r.transferSize, nav.transferSize);
            return { dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd, bytes: sent };
        }"""
    )
    await page.close()
    return timing  # type: ignore[no-any-return]


STREAM = """async () => {
    const { renderEntry, appendText, observe } = await import(new URL("../assets/render.js", location.href));
    const para = "Some **bold** text with `code` and a [link](https://example.org) and more words here. ";
    let source = "";
    const blocks = "\\n\\n```python\\ndef f(x):\\n    return x  # c\\n```\\n\\n- one\\n- two\\n\\n";
    for (let i = 0; i < 40; i++) source += para.repeat(3) + blocks;
    const el = renderEntry({ id: "bench", type: "message", role: "agent", text: "" }, {});
    document.getElementById("entries").append(el);
    const chunks = 3000;
    const size = Math.ceil(source.length / chunks);
    const start = performance.now();
    for (let i = 0; i < chunks; i++) appendText(el, source.slice(i * size, (i + 1) * size));
    observe({ kind: "turn", running: false });
    return performance.now() - start;
}"""


HOSTILE = """async () => {
    const { markdown } = await import(new URL("../assets/markdown.js", location.href));
    const start = performance.now();
    for (const mark of ["*", "_", "`", "["]) markdown(`${mark}a `.repeat(20000));
    return performance.now() - start;
}"""


async def streaming(context: Any, url: str) -> float:
    page = await context.new_page()
    cdp = await context.new_cdp_session(page)
    await page.goto(url)
    await cdp.send("Emulation.setCPUThrottlingRate", {"rate": 4})
    elapsed = await page.evaluate(STREAM)
    hostile.append(float(await page.evaluate(HOSTILE)))
    await page.close()
    return float(elapsed)


hostile: list[float] = []  # 4 x 60 KB of unmatched delimiters, parsed on the slowed CPU


async def main() -> None:
    async with EmbeddedRelay(RelayConfig(host="127.0.0.1", port=0)) as relay, async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        cold: list[dict[str, float]] = []
        warm: list[dict[str, float]] = []
        streams: list[float] = []
        for _ in range(RUNS):
            context = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
            url = f"{relay.url.rstrip('/')}/s/{secrets.token_urlsafe(16)}"
            cold.append(await measure(context, url))
            page = await context.new_page()
            await page.goto(url)
            await page.evaluate("navigator.serviceWorker.ready")
            await page.close()
            warm.append(await measure(context, url))
            streams.append(await streaming(context, url))
            await context.close()
        await browser.close()
    for name, runs in (("empty cache", cold), ("app shell cached", warm)):
        dcl = statistics.median(r["dcl"] for r in runs)
        load = statistics.median(r["load"] for r in runs)
        sent = statistics.median(r["bytes"] for r in runs)
        figures = f"ready (DOMContentLoaded) {dcl:6.0f} ms, load {load:6.0f} ms, {sent / 1024:5.1f} KiB over the wire"
        print(f"{name:>17}: {figures}")
    print(f"{'streaming':>17}: 13 KB of Markdown in 3000 chunks rendered in {statistics.median(streams):6.0f} ms")
    print(f"{'hostile':>17}: 4 x 60 KB of unmatched * _ ` [ parsed in {statistics.median(hostile):6.0f} ms")


if __name__ == "__main__":
    asyncio.run(main())
