// The Atelier viewer: one noVNC RFB connection to this session's
// WebSocket, scaled to the frame, reconnected with backoff after a drop.
import RFB from "../novnc/core/rfb.js";

const viewOnly = document.body.dataset.mode !== "control";
const screen = document.getElementById("screen");
const bar = document.getElementById("bar");
const stateEl = document.getElementById("state");
const fullscreen = document.getElementById("fullscreen");

// The WebSocket is this page's sibling route, with the same token.
const wsURL = new URL("vnc" + location.search, location.href);
wsURL.protocol = location.protocol === "https:" ? "wss:" : "ws:";

const minDelay = 500;
const maxDelay = 10000;
let delay = minDelay;
let failures = 0;
let rfb = null;
let wasLive = false;

// setState shows the view's state; tests and embedding pages read it from
// the data-state attribute.
function setState(state, text) {
  stateEl.dataset.state = state;
  stateEl.textContent = text;
  bar.classList.toggle("quiet", state === "live" || state === "view");
}

function connect() {
  setState(wasLive ? "restarting" : "connecting", wasLive ? "Desktop restarting…" : "Connecting…");
  rfb = new RFB(screen, wsURL.href, { shared: true, wsProtocols: ["binary"] });
  rfb.viewOnly = viewOnly;
  rfb.scaleViewport = true;
  rfb.focusOnClick = true;
  rfb.background = getComputedStyle(document.body).backgroundColor;
  rfb.addEventListener("connect", onConnect);
  rfb.addEventListener("disconnect", onDisconnect);
  rfb.addEventListener("clipboard", onClipboard);
  rfb.addEventListener("securityfailure", () => setState("denied", "Access refused by the desktop"));
}

function onConnect() {
  wasLive = true;
  failures = 0;
  delay = minDelay;
  setState(viewOnly ? "view" : "live", viewOnly ? "View only" : "Live");
  if (!viewOnly) {
    rfb.focus();
  }
}

async function onDisconnect() {
  rfb = null;
  failures++;
  // A refused token looks like any failed WebSocket: ask the page's own
  // URL, which answers 403 for a bad or expired token.
  if (failures >= 2 && await tokenRefused()) {
    setState("denied", "This link has expired or is not valid");
    return;
  }
  const wait = delay;
  delay = Math.min(delay * 2, maxDelay);
  setState("restarting", wasLive
    ? `Desktop restarting · reconnecting in ${Math.ceil(wait / 1000)} s`
    : `Desktop not reachable · retrying in ${Math.ceil(wait / 1000)} s`);
  setTimeout(connect, wait);
}

async function tokenRefused() {
  try {
    const r = await fetch(location.href, { method: "HEAD", cache: "no-store" });
    return r.status === 403;
  } catch {
    return false;
  }
}

// Desktop → browser clipboard, where the browser allows it (a focused
// page, and allow="clipboard-write" on an iframe).
function onClipboard(e) {
  if (navigator.clipboard && navigator.clipboard.writeText) {
    navigator.clipboard.writeText(e.detail.text).catch(() => {});
  }
}

// Browser → desktop clipboard: a paste into the page.
document.addEventListener("paste", (e) => {
  const text = e.clipboardData && e.clipboardData.getData("text/plain");
  if (rfb && !viewOnly && text) {
    rfb.clipboardPasteFrom(text);
  }
});

// Inside an iframe, a click must also take the keyboard from the parent.
screen.addEventListener("pointerdown", () => {
  window.focus();
  if (rfb && !viewOnly) {
    rfb.focus();
  }
});

if (document.fullscreenEnabled) {
  fullscreen.hidden = false;
  fullscreen.addEventListener("click", () => {
    if (document.fullscreenElement) {
      document.exitFullscreen();
    } else {
      document.documentElement.requestFullscreen().catch(() => {});
    }
  });
}

connect();
