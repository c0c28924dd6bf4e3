// notifyd dashboard: refresh the page's data in place every few seconds, with a pause control.
// No framework, no build step. The server renders (and escapes) everything; this only swaps
// the freshly rendered <main> in, so what is shown is always what the server sent.
"use strict";
(function () {
  // Confirm single-run actions before they are sent; keep filter URLs short (no empty fields).
  document.addEventListener("submit", (event) => {
    if (event.target.id === "filters") {
      event.target.querySelectorAll("input, select").forEach((field) => {
        if (!field.value) field.disabled = true;
      });
    }
    const action = event.submitter && event.submitter.dataset.action;
    if (action === "cancel" && !window.confirm("Cancel this run? It will not be attempted again.")) {
      event.preventDefault();
    }
  });
  const live = document.getElementById("live");
  const button = document.getElementById("pause");
  const state = document.getElementById("refresh-state");
  if (!live || !button) return;
  const seconds = Number(live.dataset.refresh) || 5;
  let paused = false;
  let timer = null;

  function schedule() {
    clearTimeout(timer);
    if (!paused) timer = setTimeout(refresh, seconds * 1000);
  }

  function busy() {
    // Never replace the page under someone typing in a filter or reading a folded traceback.
    const focused = document.activeElement;
    return focused && live.contains(focused) && /^(INPUT|SELECT|TEXTAREA)$/.test(focused.tagName);
  }

  async function refresh() {
    if (paused || document.hidden || busy()) return schedule();
    try {
      const answer = await fetch(window.location.href, {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
        redirect: "follow",
      });
      const html = await answer.text();
      const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("live");
      if (!answer.ok || !fresh || new URL(answer.url).pathname !== window.location.pathname) {
        window.location.reload(); // logged out, or the run is gone: show the real page
        return;
      }
      const open = new Set(
        Array.from(live.querySelectorAll("details[open]"), (d) => d.dataset.key || d.textContent.slice(0, 40))
      );
      live.replaceChildren(...Array.from(fresh.childNodes, (n) => document.importNode(n, true)));
      live.querySelectorAll("details").forEach((d) => {
        if (open.has(d.dataset.key || d.textContent.slice(0, 40))) d.open = true;
      });
      live.dispatchEvent(new CustomEvent("notifyd:refreshed", { bubbles: true }));
      document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
    } catch (error) {
      if (state) state.textContent = "refresh failed; retrying";
    }
    schedule();
  }

  button.addEventListener("click", () => {
    paused = !paused;
    button.textContent = paused ? "Resume" : "Pause";
    button.setAttribute("aria-pressed", String(paused));
    if (state) state.textContent = paused ? "paused" : `refreshing every ${seconds} s`;
    if (!paused) refresh();
    else clearTimeout(timer);
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && !paused) schedule();
  });

  schedule();
})();
