// tether's service worker: the app shell only, never session data.
//
// Kept: the viewer page's HTML (under one key, whatever session it was opened for, so no
// session id lands in the cache) and the files in SHELL. Served cache first and refreshed
// in the background, so a phone on a poor network starts at once and has the current files
// on its next start. Everything else (the WebSocket, /v1/*, /healthz) is never touched.

const VERSION = "tether-shell-1";
const SHELL = [
  "app.js", "render.js", "controls.js", "sessions.js", "dom.js", "tools.js", "queue.js", "markdown.js", "highlight.js", "ansi.js",
  "diff.js", "frames.js", "e2e.js", "device.js", "pwa.js", "style.css", "icon.svg", "icon-192.png", "manifest.webmanifest", "open.html",
];
const ASSETS = new URL("./", self.location).pathname; // …/assets/
const PAGE_KEY = new URL("shell.html", self.location).href; // the page's HTML, stored once for every session

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches
      .open(VERSION)
      .then((cache) => cache.addAll(SHELL.map((name) => new URL(name, self.location).href)))
      .catch(() => undefined) // a file missing from an older relay must not block the rest
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((key) => key !== VERSION).map((key) => caches.delete(key))))
      .then(() => self.clients.claim()),
  );
});

function shellKey(request) {
  const url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin || url.search) return null;
  if (request.mode === "navigate" && /\/s\/[^/]+$/.test(url.pathname)) return PAGE_KEY;
  if (url.pathname.startsWith(ASSETS) && SHELL.includes(url.pathname.slice(ASSETS.length))) return url.href;
  return null;
}

self.addEventListener("fetch", (event) => {
  const key = shellKey(event.request);
  if (key === null) return; // not part of the shell: the network, untouched
  event.respondWith(
    caches.open(VERSION).then(async (cache) => {
      const cached = await cache.match(key);
      const fresh = fetch(event.request).then((response) => {
        if (response.ok) cache.put(key, response.clone());
        return response;
      });
      if (!cached) return fresh;
      event.waitUntil(fresh.catch(() => undefined));
      return cached;
    }),
  );
});

// A tap on an "Approval needed" notification (queue.js) brings back the tab it came from.
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  event.waitUntil(
    self.clients
      .matchAll({ type: "window", includeUncontrolled: true })
      .then((tabs) => (tabs.find((tab) => tab.url === event.notification.data?.url) ?? tabs[0])?.focus()),
  );
});
