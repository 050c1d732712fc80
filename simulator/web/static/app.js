// Live pages: poll /api/version and, when it moves, swap in the freshly
// server-rendered <main>. The HTML comes from our own templates (escaped on the
// server); DOMParser never runs scripts, and nothing here builds markup itself.
(function () {
  "use strict";
  const live = document.querySelector("main[data-live]");
  if (!live) return;
  const status = document.getElementById("live-status");
  const every = Number(live.dataset.pollMs) || 1000;
  let current = live.dataset.version;

  function show(text, ok) {
    if (!status) return;
    status.textContent = text;
    status.classList.toggle("stale", !ok);
  }

  async function refresh() {
    const answer = await fetch(window.location.href, { cache: "no-store" });
    if (!answer.ok) throw new Error(String(answer.status));
    const page = new DOMParser().parseFromString(await answer.text(), "text/html");
    const fresh = page.querySelector("main[data-live]");
    if (!fresh) return;
    // Copy the list first: adopting a node removes it from fresh.childNodes.
    const nodes = Array.from(fresh.childNodes);
    live.replaceChildren(...nodes.map((node) => document.adoptNode(node)));
    current = fresh.dataset.version;
    live.dataset.version = current;
  }

  async function tick() {
    try {
      const answer = await fetch("/api/version", { cache: "no-store" });
      if (!answer.ok) throw new Error(String(answer.status));
      const version = await answer.json();
      if (`${version.deliveries}.${version.seat_events}` !== current) {
        await refresh();
      }
      // UTC, as every other time on the page: 04:24:14Z, never the browser's own zone.
      show("live · " + new Date().toISOString().slice(11, 19) + "Z", true);
    } catch (error) {
      show("offline, retrying", false);
    }
    window.setTimeout(tick, every);
  }

  window.setTimeout(tick, every);
})();
