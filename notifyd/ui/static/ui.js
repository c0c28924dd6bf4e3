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

// The web inbox: follow a topic over Server-Sent Events. Each message is built with
// textContent (never innerHTML): what a publisher wrote is shown as text, whatever it holds.
(function () {
  const list = document.getElementById("inbox");
  if (!list) return;
  const state = document.getElementById("inbox-state");
  const allow = document.getElementById("notify-allow");
  const notifyState = document.getElementById("notify-state");
  let last = list.dataset.last || "";
  let source = null;
  let retry = 1000;

  function setState(text) { if (state) state.textContent = text; }

  function showNotifyState() {
    if (!("Notification" in window)) { notifyState.textContent = "this browser has no notifications"; return; }
    allow.hidden = Notification.permission !== "default";
    notifyState.textContent = Notification.permission === "granted" ? "browser notifications on"
      : Notification.permission === "denied" ? "browser notifications blocked" : "";
  }
  if (allow) {
    allow.addEventListener("click", async () => {
      await Notification.requestPermission();
      showNotifyState();
    });
    showNotifyState();
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function add(message) {
    if (list.querySelector(`li[data-id="${CSS.escape(message.id)}"]`)) return;
    const item = element("li", `msg fresh prio-${Number(message.priority) || 3}`);
    item.dataset.id = message.id;
    const meta = element("div", "meta");
    const when = new Date(Number(message.time) * 1000);
    const time = element("time", "", when.toISOString().replace("T", " ").slice(0, 19) + " UTC");
    time.setAttribute("datetime", when.toISOString());
    meta.appendChild(time);
    if (Array.isArray(message.tags) && message.tags.length) {
      meta.appendChild(document.createTextNode(" "));
      meta.appendChild(element("span", "tags", message.tags.join(", ")));
    }
    item.appendChild(meta);
    if (message.title) item.appendChild(element("div", "title", message.title));
    item.appendChild(element("pre", "message", message.message || ""));
    if (typeof message.click === "string" && /^https?:\/\//.test(message.click)) {
      const link = element("a", "click", message.click);
      link.href = message.click;
      link.rel = "noopener noreferrer nofollow";
      item.appendChild(link);
    }
    list.insertBefore(item, list.firstChild);
    const empty = document.getElementById("inbox-empty");
    if (empty) empty.remove();
    if ("Notification" in window && Notification.permission === "granted") {
      new Notification(message.title || message.topic, { body: message.message || "", tag: message.id });
    }
  }

  function connect() {
    // Reconnect by hand, asking for what came after the last message seen: EventSource's own
    // reconnect would repeat the first URL's `since`.
    const url = list.dataset.events + (last ? `?since=${encodeURIComponent(last)}` : "");
    source = new EventSource(url);
    source.addEventListener("open", () => { setState("live"); list.dataset.state = "live"; retry = 1000; });
    source.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.event !== "message") return;
      last = message.id;
      list.dataset.last = last;
      add(message);
    };
    source.onerror = () => {
      source.close();
      list.dataset.state = "reconnecting";
      setState("reconnecting…");
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 30000);
    };
  }
  connect();
})();
