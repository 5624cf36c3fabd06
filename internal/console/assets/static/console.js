// The console's pages: each reads the fleet through /console/api (the
// fleet's API, reached with the sign-in cookie) and sends every change
// with the sign-in's CSRF token. Text from the fleet is only ever set as
// text, never parsed as HTML: a desktop may have written it.
"use strict";

const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
const API = "/console/api";

async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: "same-origin" };
  if (method !== "GET") opts.headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(API + path, opts);
  if (r.status === 401) {
    location.href = "/console/signin";
    throw new Error("signed out");
  }
  const text = await r.text();
  let data = text;
  try { data = text ? JSON.parse(text) : null; } catch (_) { /* JSON lines or text */ }
  if (!r.ok) throw new Error((data && data.error && data.error.message) || r.status + " " + r.statusText);
  return data;
}

function say(msg) { document.getElementById("status").textContent = msg; }

// act runs a change and reports its failure; it resolves to its result.
async function act(what, fn) {
  try {
    const out = await fn();
    say("");
    return out;
  } catch (e) {
    say(what + ": " + e.message);
    return undefined;
  }
}

// el makes an element: attrs as properties (dataset, aria via setAttribute),
// children as nodes or text.
function el(tag, attrs, ...kids) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("aria-") || k === "role" || k.startsWith("data-")) n.setAttribute(k, v);
    else n[k] = v;
  }
  for (const k of kids) n.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return n;
}

function form(f) {
  const out = {};
  for (const [k, v] of new FormData(f)) if (String(v).trim() !== "") out[k] = String(v).trim();
  return out;
}

// withScript moves a script field (JSON actions) into the spec.
function withScript(spec) {
  if (spec.script) spec.script = JSON.parse(spec.script);
  if (spec.max_steps) spec.max_steps = Number(spec.max_steps);
  return spec;
}

function describeAction(raw) {
  const a = typeof raw === "string" ? JSON.parse(raw) : raw;
  let s = a.action;
  if (a.coordinate) s += " (" + a.coordinate.join(", ") + ")";
  if (a.text) s += " " + JSON.stringify(a.text);
  if (a.duration) s += " " + a.duration + "s";
  return s;
}

function holderText(c) {
  if (!c || !c.holder) return "nobody";
  return c.holder.kind + " " + c.holder.who;
}

// ---- fleet ----

function fleetPage() {
  const grid = document.getElementById("grid");
  const filter = document.getElementById("filter");
  const themes = [...document.querySelectorAll("#create .themes option")].map((o) => o.value);
  const cards = new Map();
  const visible = new Set();
  const seen = new IntersectionObserver((entries) => {
    for (const e of entries) {
      const id = e.target.dataset.id;
      if (e.isIntersecting) { visible.add(id); refreshThumb(id); } else visible.delete(id);
    }
  });

  function card(s) {
    let c = cards.get(s.id);
    if (c) return c;
    const img = el("img", { alt: "Screen of " + s.id, width: 320, height: 180 });
    const link = el("a", { href: "/console/sessions/" + encodeURIComponent(s.id), "aria-label": "Open session " + s.id }, img);
    const title = el("strong", {});
    const meta = el("div", { className: "meta" });
    const task = el("div", { className: "meta task" });
    const theme = el("select", { "aria-label": "Theme of " + s.id });
    for (const t of themes) theme.append(el("option", { value: t }, t));
    theme.addEventListener("change", () => act("theme", () => api("PUT", "/sessions/" + s.id + "/theme", { theme: theme.value })));
    const stop = el("button", { type: "button", "aria-label": "Stop " + s.id }, "Stop");
    const start = el("button", { type: "button", "aria-label": "Start " + s.id }, "Start");
    const del = el("button", { type: "button", className: "danger", "aria-label": "Delete " + s.id }, "Delete");
    stop.addEventListener("click", () => act("stop", () => api("POST", "/sessions/" + s.id + "/stop")).then(refresh));
    start.addEventListener("click", () => act("start", () => api("POST", "/sessions/" + s.id + "/start")).then(refresh));
    del.addEventListener("click", () => {
      if (confirm("Delete session " + s.id + "? Its desktop stops; its home is kept unless purged.")) {
        act("delete", () => api("DELETE", "/sessions/" + s.id)).then(refresh);
      }
    });
    const li = el("li", { className: "card", "data-id": s.id }, link, title, meta, task, el("div", { className: "acts" }, theme, stop, start, del));
    c = { li, img, title, meta, task, theme, stop, start, s, loading: false };
    cards.set(s.id, c);
    grid.append(li);
    seen.observe(li);
    return c;
  }

  function refreshThumb(id) {
    const c = cards.get(id);
    if (!c || c.loading || c.s.state !== "ready") return;
    c.loading = true;
    const next = new Image();
    next.onload = () => { c.img.src = next.src; c.loading = false; c.li.dataset.thumbs = String(Number(c.li.dataset.thumbs || 0) + 1); };
    next.onerror = () => { c.loading = false; };
    next.src = "/console/thumbs/" + encodeURIComponent(id) + "?t=" + Date.now();
  }

  function applyFilter() {
    const want = filter.value.trim().toLowerCase();
    let shown = 0;
    for (const c of cards.values()) {
      c.li.hidden = want !== "" && !(c.s.label || "").toLowerCase().includes(want);
      if (!c.li.hidden) shown++;
    }
    document.getElementById("count").textContent = shown + " of " + cards.size + " sessions";
  }

  async function refresh() {
    const list = await act("list sessions", () => api("GET", "/sessions"));
    if (!list) return;
    const ids = new Set();
    for (const s of list.sessions) {
      ids.add(s.id);
      const c = card(s);
      c.s = s;
      c.title.textContent = s.label || s.id;
      c.meta.textContent = s.id + " · " + s.state + " · " + s.theme + " · " + s.resolution;
      c.li.dataset.state = s.state;
      if (document.activeElement !== c.theme) c.theme.value = s.theme;
      c.stop.disabled = s.desired === "stopped";
      c.start.disabled = s.desired !== "stopped";
      c.theme.disabled = s.state !== "ready";
      details(c);
    }
    for (const [id, c] of cards) {
      if (!ids.has(id)) { seen.unobserve(c.li); c.li.remove(); cards.delete(id); visible.delete(id); }
    }
    applyFilter();
  }

  // details fills a card's control holder and task with its last step.
  async function details(c) {
    try {
      const ctl = await api("GET", "/sessions/" + c.s.id + "/control");
      let text = "control: " + holderText(ctl);
      c.li.dataset.holder = ctl.holder ? ctl.holder.kind : "";
      if (ctl.task_id) {
        const t = await api("GET", "/tasks/" + ctl.task_id);
        const steps = (t.events || []).filter((e) => e.type === "step");
        const last = steps[steps.length - 1];
        text += " · task " + t.status + ": " + t.goal.slice(0, 80);
        if (last) text += " · step " + last.step + ": " + (last.actions || []).map(describeAction).join(", ");
      }
      c.task.textContent = text;
    } catch (_) { c.task.textContent = ""; }
  }

  document.getElementById("create").addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = form(e.target);
    const s = await act("create", () => api("POST", "/sessions", body));
    if (s) { say("created " + s.id); refresh(); }
  });
  filter.addEventListener("input", applyFilter);
  api("GET", "/snapshots").then((l) => {
    const sel = document.getElementById("snapshots");
    for (const s of l.snapshots || []) sel.append(el("option", { value: s.id }, s.id + " (" + s.session_id + ")"));
  }).catch(() => {});
  refresh();
  setInterval(refresh, 5000);
  setInterval(() => { for (const id of visible) refreshThumb(id); }, 2000);
}

// ---- session ----

function sessionPage() {
  const id = document.body.dataset.session;
  const P = "/sessions/" + encodeURIComponent(id);
  const leaseKey = "lease:" + id;
  const steps = document.getElementById("steps");
  let current = null; // the task shown
  let stream = null;

  async function loadSession() {
    const s = await act("session", () => api("GET", P));
    if (!s) return;
    const b = document.getElementById("sstate");
    b.textContent = s.state; b.className = "badge " + s.state;
    if (s.state === "ready" && !document.getElementById("view").src) {
      const link = await act("live view", () => api("POST", P + "/embed-token", { mode: "control" }));
      if (link) document.getElementById("view").src = link.url;
    }
  }

  async function control() {
    const c = await act("control", () => api("GET", P + "/control"));
    if (!c) return;
    const mine = sessionStorage.getItem(leaseKey);
    const held = c.holder && c.holder.kind === "person";
    if (mine && !held) sessionStorage.removeItem(leaseKey);
    const h = document.getElementById("holder");
    h.textContent = "control: " + holderText(c) + (c.task_state ? " · task " + c.task_state : "");
    h.dataset.holder = c.holder ? c.holder.kind : "";
    document.getElementById("takeover").disabled = held;
    document.getElementById("handback").disabled = !(held && sessionStorage.getItem(leaseKey));
    const help = document.getElementById("help");
    help.hidden = c.task_state !== "needs_help";
    document.getElementById("question").textContent = c.question || "";
    if (c.task_id && (!current || current !== c.task_id)) follow(c.task_id);
  }

  function stepItem(ev) {
    const li = el("li", { "data-step": ev.step || "" });
    if (ev.type === "step") {
      li.append(el("strong", {}, "Step " + ev.step));
      if (ev.thought) li.append(el("p", { className: "thought" }, ev.thought));
      const acts = (ev.actions || []).map((a, i) => describeAction(a) + (ev.results && ev.results[i] && !ev.results[i].ok ? " ✗ " + (ev.results[i].error || "skipped") : ""));
      if (acts.length) li.append(el("p", { className: "actions" }, acts.join(", ")));
      if (ev.error) li.append(el("p", { className: "error" }, "error: " + ev.error));
      if (ev.screenshot) li.append(el("img", { src: API + ev.screenshot, alt: "What the model saw at step " + ev.step, loading: "lazy" }));
    } else if (ev.type === "end") {
      li.append(el("strong", {}, "Ended " + ev.status), " ", ev.answer || ev.error || "");
    } else {
      li.append(el("em", {}, ev.type.replaceAll("_", " ")), " ", ev.question || ev.message || "");
    }
    return li;
  }

  function follow(taskID) {
    if (stream) stream.close();
    current = taskID;
    steps.replaceChildren();
    document.getElementById("cancel").disabled = false;
    document.getElementById("taskinfo").textContent = "task " + taskID;
    stream = new EventSource(API + "/tasks/" + encodeURIComponent(taskID) + "/stream");
    const on = (ev) => {
      const data = JSON.parse(ev.data);
      steps.append(stepItem(data));
      if (data.type === "end") {
        stream.close();
        document.getElementById("cancel").disabled = true;
        document.getElementById("taskinfo").textContent = "task " + taskID + " " + data.status;
      }
    };
    for (const t of ["step", "end", "paused_for_human", "needs_help", "resumed"]) stream.addEventListener(t, on);
  }

  async function audit() {
    const text = await act("audit", () => api("GET", P + "/audit"));
    const body = document.getElementById("audit");
    const lines = typeof text === "string" ? text.trim().split("\n").filter(Boolean) : text ? [JSON.stringify(text)] : [];
    body.replaceChildren(...lines.slice(-50).reverse().map((l) => {
      const e = JSON.parse(l);
      const what = e.action ? describeAction(e.action) + (e.result ? " → " + e.result.code : "") : JSON.stringify(e.detail || e.cost || e.egress || {});
      return el("tr", {}, el("td", {}, e.seq), el("td", {}, new Date(e.time).toLocaleTimeString()), el("td", {}, e.actor), el("td", {}, e.kind), el("td", {}, what));
    }));
    const v = await fetch("/console/audit/" + encodeURIComponent(id) + "/verify", { credentials: "same-origin" }).then((r) => r.json()).catch(() => null);
    const b = document.getElementById("verified");
    if (v) {
      b.textContent = v.ok ? "chain verified, " + v.entries + " entries" : "chain broken at " + v.problem;
      b.className = "badge " + (v.ok ? "ok" : "bad");
    }
  }

  async function snapshots() {
    const l = await act("snapshots", () => api("GET", "/snapshots"));
    if (!l) return;
    const ul = document.getElementById("snaps");
    ul.replaceChildren(...(l.snapshots || []).filter((s) => s.session_id === id).map((s) => {
      const clone = el("button", { type: "button", "aria-label": "Clone " + s.id + " into a new session" }, "Clone");
      clone.addEventListener("click", () => act("clone", () => api("POST", "/sessions", { snapshot_id: s.id })).then((n) => n && say("cloned into " + n.id)));
      const del = el("button", { type: "button", className: "danger", "aria-label": "Delete " + s.id }, "Delete");
      del.addEventListener("click", () => confirm("Delete snapshot " + s.id + "?") && act("delete snapshot", () => api("DELETE", "/snapshots/" + s.id)).then(snapshots));
      return el("li", { "data-id": s.id }, s.id + " · " + new Date(s.created_at).toLocaleString() + " · " + s.files + " files ", clone, " ", del);
    }));
  }

  document.getElementById("takeover").addEventListener("click", async () => {
    const l = await act("take over", () => api("POST", P + "/takeover", {}));
    if (l) sessionStorage.setItem(leaseKey, l.lease_id);
    control();
  });
  document.getElementById("handback").addEventListener("click", async () => {
    await act("hand back", () => api("POST", P + "/handback", { lease_id: sessionStorage.getItem(leaseKey) || "" }));
    sessionStorage.removeItem(leaseKey);
    control();
  });
  document.getElementById("help").addEventListener("submit", async (e) => {
    e.preventDefault();
    await act("answer", () => api("POST", P + "/handback", { message: form(e.target).message }));
    e.target.reset();
    control();
  });
  document.getElementById("task").addEventListener("submit", async (e) => {
    e.preventDefault();
    let spec;
    try { spec = withScript(form(e.target)); } catch (err) { say("script: " + err.message); return; }
    const sub = await act("start task", () => api("POST", P + "/task", spec));
    if (sub) follow(sub.task_id);
  });
  document.getElementById("cancel").addEventListener("click", () => current && act("cancel", () => api("POST", "/tasks/" + current + "/cancel")));
  document.getElementById("snap").addEventListener("click", () => act("snapshot", () => api("POST", P + "/snapshot")).then(snapshots));

  loadSession();
  control();
  api("GET", P + "/tasks").then((l) => { if (!current && l.tasks && l.tasks.length) follow(l.tasks[0].id); }).catch(() => {});
  audit();
  snapshots();
  setInterval(control, 2000);
  setInterval(loadSession, 5000);
  setInterval(audit, 5000);
}

// ---- batches ----

function batchesPage() {
  let stream = null;
  let shown = null;

  async function list() {
    const l = await act("batches", () => api("GET", "/batches"));
    if (!l) return;
    document.getElementById("batches").replaceChildren(...l.batches.map((b) => {
      const a = el("a", { href: "?id=" + encodeURIComponent(b.id) }, b.goal.slice(0, 60) || b.id);
      a.addEventListener("click", (e) => { e.preventDefault(); history.replaceState(null, "", "?id=" + b.id); show(b.id); });
      return el("li", {}, a, " ", el("span", { className: "badge" }, b.live ? "live" : "finished"));
    }));
  }

  function render(b) {
    document.getElementById("bgoal").textContent = b.goal + (b.selector ? " · " + b.selector : "") + " · " + b.id;
    const st = document.getElementById("bstate");
    st.textContent = b.live ? "live" : "finished";
    st.dataset.state = b.live ? "live" : "finished";
    const cols = new Map();
    for (const m of b.members) {
      const where = m.task ? m.task.status : m.outcome;
      if (!cols.has(where)) cols.set(where, []);
      let text = m.task ? m.task.steps + " steps · $" + m.task.cost_usd.toFixed(4) : m.message || "";
      if (m.last_step && m.last_step.actions) text += " · " + m.last_step.actions.map(describeAction).join(", ");
      cols.get(where).push(el("li", { "data-session": m.session_id }, el("a", { href: "/console/sessions/" + encodeURIComponent(m.session_id) }, m.session_id), el("br"), text));
    }
    document.getElementById("board").replaceChildren(...[...cols].map(([where, items]) =>
      el("section", { className: "col", "data-where": where, "aria-label": where }, el("h3", {}, where.replaceAll("_", " ") + " (" + items.length + ")"), el("ul", {}, ...items))));
  }

  async function show(id) {
    if (stream) stream.close();
    shown = id;
    const b = await act("batch", () => api("GET", "/batches/" + encodeURIComponent(id)));
    if (!b) return;
    render(b);
    if (!b.live) return;
    let pending = false;
    stream = new EventSource(API + "/batches/" + encodeURIComponent(id) + "/events");
    stream.addEventListener("task", () => {
      if (pending) return;
      pending = true;
      setTimeout(async () => {
        pending = false;
        const now = await api("GET", "/batches/" + encodeURIComponent(id)).catch(() => null);
        if (now && shown === id) render(now);
      }, 300);
    });
    stream.addEventListener("end", (ev) => {
      stream.close();
      const d = JSON.parse(ev.data);
      if (d.batch && shown === id) render(d.batch);
      list();
    });
  }

  document.getElementById("dispatch").addEventListener("submit", async (e) => {
    e.preventDefault();
    let spec;
    try { spec = withScript(form(e.target)); } catch (err) { say("script: " + err.message); return; }
    if (spec.session_ids) spec.session_ids = spec.session_ids.split(",").map((s) => s.trim()).filter(Boolean);
    const b = await act("dispatch", () => api("POST", "/tasks", spec));
    if (!b) return;
    history.replaceState(null, "", "?id=" + b.id);
    show(b.id);
    list();
  });
  list();
  const id = new URLSearchParams(location.search).get("id");
  if (id) show(id);
}

const pages = { fleet: fleetPage, session: sessionPage, batches: batchesPage };
(pages[document.body.dataset.page] || (() => {}))();
