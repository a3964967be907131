// The installable app: register the service worker (sw.js), which keeps the app shell
// (this page's HTML, scripts, styles, icons) for a fast start on a poor network. It never
// stores session data: the conversation only ever travels over the WebSocket.

if ("serviceWorker" in navigator && window.isSecureContext) {
  // Its scope is the relay's root (the pages live at ../s/<id>); the relay allows that
  // with a Service-Worker-Allowed header on sw.js.
  const script = new URL("sw.js", import.meta.url);
  navigator.serviceWorker.register(script, { scope: new URL("../", script).pathname }).catch((error) => {
    console.info("offline start unavailable:", error.message);
  });
}
