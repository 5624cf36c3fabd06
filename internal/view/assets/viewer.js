// The Atelier viewer: one noVNC RFB connection to this session's
// WebSocket, scaled to the frame, reconnected with backoff after a drop;
// and, where the fleet has a control lease, who holds control, with
// "Take control" and "Hand back" for a control token.
import RFB from "../novnc/core/rfb.js";

const viewOnly = document.body.dataset.mode !== "control";
const session = document.body.dataset.session;
const screen = document.getElementById("screen");
const bar = document.getElementById("bar");
const stateEl = document.getElementById("state");
const fullscreen = document.getElementById("fullscreen");

// This page's viewer id names its claim on the control lease; kept for the
// tab's life, so a reload keeps control.
const viewerID = storedViewerID();

// The WebSocket is this page's sibling route, with the same token.
const wsURL = new URL("vnc" + location.search, location.href);
wsURL.protocol = location.protocol === "https:" ? "wss:" : "ws:";
wsURL.searchParams.set("viewer", viewerID);

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
  quietBar();
}

// The bar fades while all is well, and stays up while the agent waits
// for a person.
function quietBar() {
  const live = stateEl.dataset.state === "live" || stateEl.dataset.state === "view";
  bar.classList.toggle("quiet", live && controlEl.dataset.taskState !== "needs_help");
}

function connect() {
  setState(wasLive ? "restarting" : "connecting", wasLive ? "Desktop restarting…" : "Connecting…");
  rfb = new RFB(screen, wsURL.href, { shared: true, wsProtocols: ["binary"] });
  rfb.viewOnly = viewOnly;
  // Tight with JPEG tiles (quality 66). wayvnc 0.5 knows only levels 0 and
  // 9, and answers noVNC's default 6 with lossless zlib tiles, which noVNC
  // inflates in JavaScript: 35-46 ms for a full-screen change against
  // about 10 for JPEG, which costs 3-8 times the bytes (BENCHMARKS.md, the
  // live view).
  rfb.qualityLevel = 9;
  rfb.scaleViewport = true;
  rfb.focusOnClick = true;
  rfb.background = getComputedStyle(document.body).backgroundColor;
  rfb.addEventListener("connect", onConnect);
  rfb.addEventListener("disconnect", onDisconnect);
  if (!viewOnly) {
    // A view token's stream carries no clipboard (the fleet drops it).
    rfb.addEventListener("clipboard", onClipboard);
  }
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

// Browser → desktop clipboard: a paste into the page (not into the bar's
// message field).
document.addEventListener("paste", (e) => {
  if (bar.contains(e.target)) {
    return;
  }
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

// --- Control ---

const controlEl = document.getElementById("control");
const holderEl = document.getElementById("holder");
const taskStateEl = document.getElementById("task-state");
const take = document.getElementById("take");
const handback = document.getElementById("handback");
const note = document.getElementById("note");
const notice = document.getElementById("notice");
const controlURL = new URL("embed/control" + location.search, location.href);
const leaseKey = "atelier.lease." + session;
const pollEvery = 1000;

const holderText = {
  task: "Agent in control",
  you: "You have control",
  other: "Someone else has control",
  nobody: "Nobody has control",
};

// Answers are numbered when their request is sent (an action's when its
// answer comes); one older than the answer shown is dropped, so a poll
// sent before a takeover answered cannot undo it.
let sent = 0;
let shown = 0;
let polling = document.body.dataset.control === "on";
let timer = 0;

function storedViewerID() {
  const key = "atelier.viewer";
  let id = null;
  try {
    id = sessionStorage.getItem(key);
  } catch {
    // Storage refused (a sandboxed frame): an id for this load only.
  }
  if (!id || !/^[A-Za-z0-9_-]{1,64}$/.test(id)) {
    id = newID();
    try {
      sessionStorage.setItem(key, id);
    } catch {
      // As above.
    }
  }
  return id;
}

// crypto.randomUUID exists only in secure contexts; a fleet on plain HTTP
// away from localhost gets random hex instead.
function newID() {
  if (crypto.randomUUID) {
    return crypto.randomUUID();
  }
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

// The lease this page took: its id, and its holder to recognise it in the
// state (which names no lease). Kept in the tab's storage too, so a reload
// can hand it back.
let myLease = loadLease();

function loadLease() {
  try {
    return JSON.parse(sessionStorage.getItem(leaseKey));
  } catch {
    return null;
  }
}

function keepLease(lease) {
  myLease = lease;
  try {
    if (lease) {
      sessionStorage.setItem(leaseKey, JSON.stringify(lease));
    } else {
      sessionStorage.removeItem(leaseKey);
    }
  } catch {
    // Kept for this load only.
  }
}

function showControl(n, st) {
  if (n < shown) {
    return;
  }
  shown = n;
  const lease = myLease;
  const h = st.holder;
  let holder = "nobody";
  if (h && h.kind === "task") {
    holder = "task";
  } else if (h) {
    holder = lease && lease.who === h.who && lease.since === h.since ? "you" : "other";
  }
  if (lease && holder !== "you") {
    keepLease(null); // handed back elsewhere, or returned after being idle
  }
  controlEl.hidden = false;
  controlEl.dataset.holder = holder;
  controlEl.dataset.taskState = st.task_state || "";
  holderEl.textContent = holderText[holder];
  let task = "";
  if (st.task_state === "needs_help") {
    task = "The agent needs help: " + st.question;
  } else if (st.task_state === "paused_for_human") {
    task = holder === "you" ? "Paused for you" : "Agent paused";
  }
  taskStateEl.textContent = task;
  taskStateEl.hidden = task === "";
  if (!viewOnly) {
    take.hidden = holder === "you";
    take.disabled = holder === "other";
    take.title = holder === "other" ? "Someone else has control" : "";
    handback.hidden = holder !== "you";
  }
  quietBar();
}

function say(text) {
  notice.textContent = text;
  notice.hidden = text === "";
}

async function refresh() {
  const n = ++sent;
  try {
    const r = await fetch(controlURL, { cache: "no-store" });
    if (r.status === 403 || r.status === 404) {
      // An expired link (the view says so) or no control lease here.
      polling = false;
      return;
    }
    if (r.ok) {
      showControl(n, await r.json());
    }
  } catch {
    // The fleet is unreachable for now; the next poll tries again.
  }
}

async function tick() {
  clearTimeout(timer);
  if (!polling || document.hidden) {
    return;
  }
  await refresh();
  clearTimeout(timer);
  if (polling && !document.hidden) {
    timer = setTimeout(tick, pollEvery);
  }
}

// post sends one control request and returns its answer, or throws with
// the fleet's message.
async function post(body) {
  const r = await fetch(controlURL, {
    method: "POST",
    cache: "no-store",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    throw new Error((data.error && data.error.message) || `the fleet answered ${r.status}`);
  }
  return data;
}

take.addEventListener("click", async () => {
  take.disabled = true;
  try {
    const lease = await post({ action: "takeover", viewer: viewerID });
    const n = ++sent;
    keepLease({ id: lease.lease_id, who: lease.holder.who, since: lease.holder.since });
    say("");
    showControl(n, { holder: lease.holder, task_state: lease.paused_task_id ? "paused_for_human" : "" });
    if (rfb) {
      rfb.focus();
    }
  } catch (err) {
    say(err.message);
  }
  take.disabled = controlEl.dataset.holder === "other";
  tick();
});

handback.addEventListener("submit", async (e) => {
  e.preventDefault();
  const button = handback.querySelector("button");
  button.disabled = true;
  try {
    const st = await post({ action: "handback", lease_id: myLease ? myLease.id : "", message: note.value });
    const n = ++sent;
    keepLease(null);
    note.value = "";
    say("");
    showControl(n, st);
  } catch (err) {
    say(err.message);
  }
  button.disabled = false;
  tick();
});

document.addEventListener("visibilitychange", tick);

connect();
tick();
