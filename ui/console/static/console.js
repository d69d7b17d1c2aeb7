// Vigil operator console. Plain JavaScript, no libraries, nothing from the
// internet. Data from the server is only ever put into the page with
// textContent or attributes, never as HTML, except the page's own
// sections re-read from the server (already escaped by html/template).
"use strict";

(function () {
  const page = document.body.dataset.page || "";
  const node = document.body.dataset.node || "";
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";

  // ---- drafts: what the operator typed and has not sent, kept in this
  // tab (sessionStorage) so that a reload or a move to another node does
  // not lose it. Never passwords, PINs or secrets. ----

  const DRAFT = "vigil.draft:";
  function draftable(e) {
    if (!e || !e.id || !e.form || e.closest("[data-no-draft]")) return false;
    if (e.tagName === "TEXTAREA") return !e.readOnly;
    return e.tagName === "INPUT" && !e.readOnly && ["text", "search", "tel", ""].includes(e.getAttribute("type") || "");
  }
  function draftKey(e) { return DRAFT + location.pathname + "#" + e.id; }
  function store(k, v) { try { if (v) sessionStorage.setItem(k, v); else sessionStorage.removeItem(k); } catch (err) { /* full or off */ } }
  document.addEventListener("input", (e) => { if (draftable(e.target)) store(draftKey(e.target), e.target.value); });
  function forgetDrafts(form) {
    form.querySelectorAll("input, textarea").forEach((f) => { if (draftable(f)) store(draftKey(f), ""); });
  }
  document.addEventListener("submit", (e) => { if (e.target.tagName === "FORM" && !e.target.classList.contains("js-post")) forgetDrafts(e.target); }, true);
  function allDrafts() {
    const out = {};
    for (let i = 0; i < sessionStorage.length; i++) {
      const k = sessionStorage.key(i);
      if (k && k.startsWith(DRAFT)) out[k] = sessionStorage.getItem(k);
    }
    return out;
  }
  function restoreDrafts() {
    const prefix = DRAFT + location.pathname + "#";
    let n = 0;
    for (const [k, v] of Object.entries(allDrafts())) {
      if (!k.startsWith(prefix)) continue;
      const e = document.getElementById(k.slice(prefix.length));
      if (!draftable(e) || e.value === v || e.value !== e.defaultValue) continue;
      e.value = v;
      e.classList.add("restored");
      n++;
    }
    return n;
  }

  // ---- the hand-over page: this node took the ticket (or not) ----

  if (page === "resume") {
    const r = document.getElementById("resume");
    try {
      const drafts = JSON.parse(r.dataset.drafts || "{}");
      for (const [k, v] of Object.entries(drafts)) {
        if (k.startsWith(DRAFT + "/ui/") && typeof v === "string") store(k, v);
      }
      if (r.dataset.from) {
        sessionStorage.setItem("vigil.moved", JSON.stringify({ from: r.dataset.from, to: node,
          lostAt: Number(r.dataset.lostAt) || 0, at: Date.now(), failed: !!r.dataset.failed }));
      }
    } catch (err) { /* nothing to keep */ }
    if (!r.dataset.failed && r.dataset.next) location.replace(r.dataset.next);
    return;
  }
  if (!csrf || !document.body.dataset.signedIn) return; // the sign-in page needs none of what follows

  const baseTitle = document.title;
  const alarms = new Map(); // id -> queue row, open alarms only
  let serverOffset = 0; // server clock minus ours, in ms
  let selectedID = null;

  // ---- helpers ----

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  function now() { return Date.now() + serverOffset; }

  function ago(ms) {
    if (ms < 0) ms = 0;
    const s = Math.floor(ms / 1000), h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, ss = s % 60;
    const two = (n) => String(n).padStart(2, "0");
    if (h > 0) return h + "h " + two(m) + "m";
    if (m > 0) return m + "m " + two(ss) + "s";
    return ss + "s";
  }

  function newID() {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

  let toastTimer = null;
  function toast(msg, isError) {
    const t = document.getElementById("toast");
    if (!t) return;
    t.textContent = msg;
    t.classList.toggle("toast-error", !!isError);
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, isError ? 8000 : 3000);
  }

  function localTimes(root) {
    (root || document).querySelectorAll("time[data-local]").forEach((t) => {
      const d = new Date(t.getAttribute("datetime"));
      if (!isNaN(d)) t.textContent = d.toLocaleTimeString("en-GB", { hour12: false });
    });
  }

  async function post(url, fields) {
    const body = new URLSearchParams(fields);
    const resp = await fetch(url, {
      method: "POST", body, credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRF-Token": csrf },
    });
    let data = {};
    try { data = await resp.json(); } catch (e) { data = { error: "HTTP " + resp.status }; }
    return { ok: resp.ok, status: resp.status, data };
  }

  // ---- the open alarms, from the event stream ----

  // sortedRows orders the queue as the node does (sortRows in view.go):
  // alarms the worker reset wait, at a lower urgency, after the others;
  // then by priority, oldest first; and the open alarms of one incident
  // together, under the first of them in that order (r.grouped).
  function sortedRows() {
    const rows = Array.from(alarms.values()).sort((a, b) => (a.reset ? 1 : 0) - (b.reset ? 1 : 0) ||
      a.priority - b.priority || Date.parse(a.raised_at) - Date.parse(b.raised_at) || (a.id < b.id ? -1 : 1));
    const head = new Map();
    rows.forEach((r, i) => { const k = r.incident_id || r.id; if (!head.has(k)) head.set(k, i); });
    const pos = new Map(rows.map((r, i) => [r.id, i]));
    rows.sort((a, b) => head.get(a.incident_id || a.id) - head.get(b.incident_id || b.id) || pos.get(a.id) - pos.get(b.id));
    rows.forEach((r, i) => { r.grouped = i > 0 && (rows[i - 1].incident_id || rows[i - 1].id) === (r.incident_id || r.id); });
    return rows;
  }

  function waitingRows() { return sortedRows().filter((r) => r.status === "raised"); }

  function updateCounts() {
    const open = alarms.size, waiting = waitingRows().length;
    document.title = "(" + open + ") " + baseTitle;
    const oc = document.getElementById("open-count");
    if (oc) oc.textContent = String(open);
    const qc = document.getElementById("queue-count");
    if (qc) qc.textContent = String(open);
    const w = document.getElementById("waiting");
    if (w) {
      w.hidden = waiting === 0;
      w.textContent = waiting + (waiting === 1 ? " alarm waiting" : " alarms waiting");
    }
    window.vigilOpenAlarms = open;
    window.vigilWaitingAlarms = waiting;
    siren.update();
  }

  // ---- audible alert: Web Audio, no sound file ----

  const siren = {
    ctx: null,
    timer: null,
    beeps: 0,
    ensure() {
      if (!this.ctx) {
        const AC = window.AudioContext || window.webkitAudioContext;
        if (!AC) return null;
        this.ctx = new AC();
        this.ctx.onstatechange = () => this.update();
      }
      if (this.ctx.state === "suspended") this.ctx.resume().catch(() => {});
      return this.ctx;
    },
    tone(freq, start, dur) {
      const c = this.ctx, o = c.createOscillator(), g = c.createGain();
      o.type = "square";
      o.frequency.value = freq;
      g.gain.setValueAtTime(0.0001, start);
      g.gain.exponentialRampToValueAtTime(0.2, start + 0.015);
      g.gain.exponentialRampToValueAtTime(0.0001, start + dur);
      o.connect(g).connect(c.destination);
      o.start(start);
      o.stop(start + dur + 0.03);
    },
    play() {
      const waiting = waitingRows();
      if (!waiting.length || !this.ctx || this.ctx.state !== "running") return;
      const t = this.ctx.currentTime + 0.02;
      if (waiting.some((r) => r.duress || r.do_not_call)) {
        for (let i = 0; i < 4; i++) this.tone(1320, t + i * 0.16, 0.1); // urgent, distinct
      } else if (waiting.some((r) => r.priority === 1)) {
        this.tone(880, t, 0.22); this.tone(660, t + 0.26, 0.22); this.tone(880, t + 0.52, 0.22);
      } else {
        this.tone(740, t, 0.25);
      }
      this.beeps++;
      window.vigilBeeps = this.beeps;
    },
    update() {
      const waiting = waitingRows().length > 0;
      if (waiting) this.ensure();
      const running = !!this.ctx && this.ctx.state === "running";
      const blocked = waiting && !running;
      const btn = document.getElementById("sound-on");
      if (btn) btn.hidden = !blocked;
      window.vigilSoundBlocked = blocked;
      window.vigilAlerting = waiting && running;
      if (waiting && running && !this.timer) {
        this.play();
        this.timer = setInterval(() => this.play(), 2500);
      } else if ((!waiting || !running) && this.timer) {
        clearInterval(this.timer);
        this.timer = null;
      }
    },
  };
  window.vigilAlerting = false;
  const unlock = () => { if (siren.ctx && siren.ctx.state !== "running") siren.ctx.resume().then(() => siren.update()); };
  document.addEventListener("keydown", unlock, true);
  document.addEventListener("pointerdown", unlock, true);

  // ---- event stream ----

  let es = null;
  function setConn(ok, text) {
    const c = document.getElementById("conn");
    if (!c) return;
    c.textContent = text;
    c.className = "conn " + (ok ? "conn-ok" : "conn-lost");
  }

  function connect() {
    es = new EventSource("/ui/events");
    es.addEventListener("open", () => { setConn(true, "live"); handover.recovered(); });
    es.addEventListener("error", () => { setConn(false, "connection lost: reconnecting"); handover.lost(); });
    es.addEventListener("board", () => { if (page === "sessions" || page === "cluster") refreshSoon(); });
    es.addEventListener("snapshot", (ev) => {
      const s = JSON.parse(ev.data);
      serverOffset = Date.parse(s.now) - Date.now();
      alarms.clear();
      for (const r of s.rows) alarms.set(r.id, r);
      setConn(true, "live");
      changed(null);
      // A board change between the page's render and this stream (or
      // while it was reconnecting) sent no "board" event here: fetch the
      // board again now that every later change will.
      if (page === "sessions" || page === "cluster") refreshSoon();
    });
    es.addEventListener("alarm", (ev) => {
      const m = JSON.parse(ev.data);
      const r = m.row;
      const isNew = !alarms.has(r.id) && !r.closed;
      if (isNew) (window.vigilArrivals = window.vigilArrivals || {})[r.id] = Date.now(); // for tests and diagnosis
      if (r.closed) alarms.delete(r.id); else alarms.set(r.id, r);
      changed(r, isNew);
    });
    es.addEventListener("audio", (ev) => {
      const m = JSON.parse(ev.data);
      if (page === "alarm" && m.alarm_id === alarmID()) refreshLive();
    });
    es.addEventListener("resync", () => { es.close(); connect(); });
    es.addEventListener("signedout", () => { es.close(); location.href = "/ui/login"; });
  }

  function changed(row, isNew) {
    updateCounts();
    if (page === "queue") renderQueue(row && isNew ? row.id : null);
    if (page === "alarm" && row && row.id === alarmID()) refreshLive();
  }

  // ---- queue page ----

  function rowClass(r) {
    const c = ["alarm", "type-" + r.type.replace(/_/g, "-"), "p" + Math.min(r.priority, 5), "status-" + r.status];
    if (r.duress) c.push("duress");
    if (r.do_not_call) c.push("dnc");
    if (r.reset) c.push("reset");
    if (r.grouped) c.push("grouped");
    if (r.id === selectedID) c.push("selected");
    return c.join(" ");
  }

  function rowEl(r) {
    const tr = el("tr", rowClass(r));
    tr.dataset.id = r.id;
    tr.dataset.raised = r.raised_at;
    tr.dataset.status = r.status;
    tr.tabIndex = -1;
    tr.appendChild(el("td", "prio", String(r.priority)));
    const type = el("td", "type");
    const a = el("a", null, r.type_label);
    a.href = "/ui/alarms/" + encodeURIComponent(r.id);
    type.appendChild(a);
    if (r.do_not_call) { type.appendChild(document.createTextNode(" ")); type.appendChild(el("span", "dnc-badge", "DO NOT CALL")); }
    if (r.reset) { type.appendChild(document.createTextNode(" ")); type.appendChild(el("span", "reset-badge", "RESET: CONFIRM SAFE")); }
    if (r.linked) {
      const b = el("span", "linked-badge", "↳ LINKED");
      b.title = "Part of an incident raised earlier: see the alarm's page";
      type.appendChild(document.createTextNode(" "));
      type.appendChild(b);
    }
    tr.appendChild(type);
    const worker = el("td", "worker", r.worker);
    if (r.update_left) {
      const u = el("span", "update-badge", "UPDATE LEFT");
      u.title = "The worker left an Update message: read it on the alarm's page";
      worker.appendChild(document.createTextNode(" "));
      worker.appendChild(u);
    }
    tr.appendChild(worker);
    const where = el("td", "where", r.where || null);
    if (!r.where) where.appendChild(el("span", "muted", "no location"));
    else if (r.where_at) {
      const fa = el("span", "fix-age", ago(now() - Date.parse(r.where_at)));
      fa.dataset.since = r.where_at;
      where.appendChild(document.createTextNode(" "));
      where.appendChild(fa);
    }
    tr.appendChild(where);
    tr.appendChild(el("td", "org", r.org));
    const age = el("td", "age", ago(now() - Date.parse(r.raised_at)));
    age.dataset.since = r.raised_at;
    tr.appendChild(age);
    tr.appendChild(el("td", "status", r.status_label));
    tr.appendChild(el("td", "claim", r.ack_by_name || ""));
    tr.addEventListener("click", (e) => {
      if (e.target.closest("a")) return;
      select(r.id);
    });
    tr.addEventListener("dblclick", () => open(r.id));
    return tr;
  }

  function renderQueue() {
    const body = document.getElementById("queue-body");
    if (!body) return;
    const rows = sortedRows();
    if (selectedID && !alarms.has(selectedID)) selectedID = null;
    if (!selectedID && rows.length) selectedID = rows[0].id;
    body.replaceChildren(...rows.map(rowEl));
    const empty = document.getElementById("queue-empty");
    if (empty) empty.hidden = rows.length > 0;
  }

  function select(id) {
    selectedID = id;
    document.querySelectorAll("#queue-body tr").forEach((tr) => {
      const on = tr.dataset.id === id;
      tr.classList.toggle("selected", on);
      if (on) { tr.focus({ preventScroll: true }); tr.scrollIntoView({ block: "nearest" }); }
    });
  }

  function move(d) {
    const rows = sortedRows();
    if (!rows.length) return;
    let i = rows.findIndex((r) => r.id === selectedID);
    i = i < 0 ? 0 : Math.max(0, Math.min(rows.length - 1, i + d));
    select(rows[i].id);
  }

  function open(id) { if (id) location.href = "/ui/alarms/" + encodeURIComponent(id); }

  async function acknowledge(id) {
    if (!id) return;
    const r = await post("/ui/alarms/" + encodeURIComponent(id) + "/acknowledge", { csrf, cmd_id: newID() });
    if (r.ok) toast("Acknowledged: " + r.data.row.type_label + ", " + r.data.row.worker);
    else toast(r.data.error || "Not acknowledged", true);
    return r;
  }

  // ---- alarm page ----

  function alarmID() {
    const a = document.querySelector("[data-alarm]");
    return a ? a.dataset.alarm : "";
  }

  // sameSection reports whether two versions of a section show the same
  // thing: the forms' command IDs differ on every render, and ages and
  // times are written here from their attributes; neither counts.
  function sameSection(a, b) {
    const strip = (n) => {
      const c = n.cloneNode(true);
      c.querySelectorAll('input[name="cmd_id"]').forEach((i) => i.removeAttribute("value"));
      c.querySelectorAll("[data-since], time[data-local]").forEach((t) => { t.textContent = ""; }); // rendered here from attributes
      return c.innerHTML;
    };
    return strip(a) === strip(b);
  }

  let refreshing = false, again = false;
  window.vigilRefreshing = false;
  async function refreshLive() {
    if (refreshing) { again = true; return; }
    refreshing = window.vigilRefreshing = true;
    try {
      const resp = await fetch(location.pathname + location.search, { headers: { Accept: "text/html" }, credentials: "same-origin" });
      if (!resp.ok) return;
      const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
      doc.querySelectorAll("[data-live][id]").forEach((fresh) => {
        const cur = document.getElementById(fresh.id);
        if (!cur || sameSection(cur, fresh)) return; // leave alone what the operator may be clicking
        const player = cur.querySelector("audio");
        if (player && !player.paused) return; // do not cut off what the operator listens to
        cur.replaceWith(document.importNode(fresh, true));
      });
      // A section that appeared or went (the close form once closed, say)
      // needs the whole page.
      const shape = (d) => Array.from(d.querySelectorAll("section[id]"), (s) => s.id).join(",");
      if (shape(doc) !== shape(document)) location.reload();
      localTimes();
      filterBoard();
    } finally {
      refreshing = window.vigilRefreshing = false;
      if (again) { again = false; refreshLive(); }
    }
  }

  document.addEventListener("submit", async (e) => {
    const form = e.target;
    if (!form.classList || !form.classList.contains("js-post")) return;
    e.preventDefault();
    const fields = new URLSearchParams(new FormData(form, e.submitter || null));
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => { b.disabled = true; });
    const errBox = document.getElementById("action-error");
    let r;
    try {
      r = await post(form.action, fields);
    } catch (err) {
      toast("Not saved: no answer from the node. Try again (safe to repeat).", true);
      return;
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
    const id = form.querySelector('input[name="cmd_id"]');
    if (id) id.value = newID(); // the next use is a new command
    let inline = form.nextElementSibling;
    if (!inline || !inline.classList.contains("form-error")) inline = null;
    if (!r.ok) {
      const msg = r.data.error || ("Refused (HTTP " + r.status + ")");
      if (errBox) { errBox.textContent = msg; errBox.hidden = false; }
      if (!inline) {
        inline = el("p", "error form-error");
        inline.setAttribute("role", "alert");
        form.after(inline);
      }
      inline.textContent = msg; // beside the form the operator used
      toast(msg, true);
      return;
    }
    if (errBox) errBox.hidden = true;
    if (inline) inline.remove();
    forgetDrafts(form);
    form.querySelectorAll("textarea, input:not([type=hidden])").forEach((f) => { f.value = ""; });
    toast("Saved");
    refreshLive();
  });

  // ---- keys ----

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    const typing = t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
    if (typing) {
      if (e.key === "Escape") t.blur();
      return;
    }
    const help = document.getElementById("keys");
    if (e.key === "?") { if (help) help.hidden = !help.hidden; e.preventDefault(); return; }
    if (page === "queue") {
      switch (e.key) {
        case "j": case "ArrowDown": move(1); e.preventDefault(); break;
        case "k": case "ArrowUp": move(-1); e.preventDefault(); break;
        case "Enter": open(selectedID); e.preventDefault(); break;
        case "a": acknowledge(selectedID); e.preventDefault(); break;
      }
    } else if (page === "alarm") {
      switch (e.key) {
        case "a": { const b = document.getElementById("ack"); if (b) { b.click(); e.preventDefault(); } break; }
        case "q": case "Escape": if (help && !help.hidden) { help.hidden = true; } else { location.href = "/ui/"; } e.preventDefault(); break;
        case "c": { const s = document.getElementById("resolution"); if (s) { s.focus(); s.scrollIntoView({ block: "center" }); e.preventDefault(); } break; }
        case "n": { const n = document.getElementById("note-text"); if (n) { n.focus(); e.preventDefault(); } break; }
      }
    }
  });

  const soundBtn = document.getElementById("sound-on");
  if (soundBtn) soundBtn.addEventListener("click", unlock);

  // ---- ticking ages and timers ----

  function tick() {
    document.querySelectorAll("[data-since]").forEach((e) => {
      e.textContent = ago(now() - Date.parse(e.dataset.since));
    });
    document.querySelectorAll("[data-until]").forEach((e) => {
      const left = Date.parse(e.dataset.until) - now();
      e.textContent = left >= 0 ? ago(left) : "passed " + ago(-left) + " ago";
      const cell = e.closest("td");
      if (cell) cell.classList.toggle("late", left < 0);
    });
  }
  setInterval(tick, 1000);

  // ---- the sessions board: the search filters as you type ----

  let refreshTimer = null;
  function refreshSoon() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => { refreshTimer = null; refreshLive(); }, 300);
  }

  function filterBoard() {
    const q = document.getElementById("board-q");
    if (!q) return;
    const words = q.value.toLowerCase().split(/\s+/).filter(Boolean);
    document.querySelectorAll("tr[data-search]").forEach((tr) => {
      const text = tr.dataset.search;
      tr.hidden = !words.every((w) => text.includes(w));
    });
  }
  const boardQ = document.getElementById("board-q");
  if (boardQ) {
    boardQ.addEventListener("input", () => {
      filterBoard();
      const u = new URL(location.href);
      if (boardQ.value) u.searchParams.set("q", boardQ.value); else u.searchParams.delete("q");
      history.replaceState(null, "", u.pathname + u.search);
    });
  }
  if (page === "cluster") setInterval(refreshLive, 3000);

  // ---- credentials: copy and download, never stored ----

  document.addEventListener("click", (e) => {
    const copy = e.target.closest(".js-copy");
    if (copy) {
      const src = document.getElementById(copy.dataset.copy);
      const text = src ? (src.value !== undefined && src.tagName === "INPUT" ? src.value : src.textContent) : "";
      navigator.clipboard.writeText(text).then(() => toast("Copied"), () => toast("Select the text and copy it", true));
      return;
    }
    const dl = e.target.closest(".js-download");
    if (dl) {
      const src = document.getElementById(dl.dataset.download);
      const url = URL.createObjectURL(new Blob([src.textContent], { type: "application/json" }));
      const a = el("a");
      a.href = url;
      a.download = dl.dataset.filename || "vigil-device.json";
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    }
  });

  // ---- moving to another node when this one stops ----
  //
  // The page keeps a hand-over ticket from its node, renewed every half
  // minute, with the other nodes' console addresses. When the event
  // stream breaks it says so at once; if its node does not answer, it
  // posts the ticket, this page's address and the unsent drafts to the
  // first other node that does (docs/console.md).

  const HANDOVER = "vigil.handover";
  const handover = {
    failing: false,
    lostAt: 0,
    unloading: false,
    timer: null,
    state() {
      try { return JSON.parse(sessionStorage.getItem(HANDOVER)) || null; } catch (err) { return null; }
    },
    async refresh() {
      try {
        const r = await post("/ui/resume/ticket", {});
        if (r.ok && r.data.ticket) {
          r.data.got = Date.now();
          sessionStorage.setItem(HANDOVER, JSON.stringify(r.data));
          window.vigilHandoverReady = r.data.peers.length;
        }
      } catch (err) { /* the stream's error handling takes over */ }
    },
    start() {
      const st = this.state();
      const every = (st && st.refresh_ms) || 30000;
      if (!st || st.node !== node || Date.now() - st.got > every) this.refresh();
      else window.vigilHandoverReady = st.peers.length;
      this.timer = setInterval(() => { if (!this.failing) this.refresh(); }, every);
    },
    banner(text, cls) {
      const b = document.getElementById("failover");
      if (!b) return;
      b.textContent = text;
      b.className = "failover " + (cls || "");
      b.hidden = false;
    },
    hide() {
      const b = document.getElementById("failover");
      if (b && !b.classList.contains("moved")) b.hidden = true;
    },
    lost() {
      if (this.unloading || this.failing) return;
      this.failing = true;
      this.lostAt = Date.now();
      window.vigilLostAt = this.lostAt;
      this.banner("Lost the connection to node " + node + ". Finding a node that answers… Keep typing: nothing is lost.", "lost");
      console.warn("vigil: the connection to node " + node + " was lost; looking for a node that answers");
      this.failover();
    },
    recovered() {
      if (!this.failing) return;
      this.failing = false;
      this.hide();
      toast("Connection to node " + node + " restored");
    },
    async probe(base, ms) {
      const ctl = new AbortController();
      const t = setTimeout(() => ctl.abort(), ms);
      try {
        const r = await fetch(base + "/ui/alive", { signal: ctl.signal, cache: "no-store", credentials: "omit", mode: base ? "cors" : "same-origin" });
        return r.ok ? await r.json() : null;
      } catch (err) {
        return null;
      } finally {
        clearTimeout(t);
      }
    },
    async failover() {
      for (let round = 0; this.failing; round++) {
        const own = await this.probe("", 1500);
        if (!this.failing) return;
        if (own && own.ok) {
          this.banner("The connection to node " + node + " was interrupted. Reconnecting…", "lost");
          if (es && es.readyState === 2) connect();
          await sleep(3000);
          continue;
        }
        const st = this.state();
        for (const p of (st && st.peers) || []) {
          const a = await this.probe(p.url, 2000);
          if (!this.failing) return;
          if (a && a.ok) { this.move(p, st); return; }
        }
        this.banner("Node " + node + " does not answer, and no other node answered yet. Still trying… Keep this tab open: your notes are kept.", "lost");
        await sleep(2000);
      }
    },
    move(p, st) {
      this.banner("Node " + node + " stopped answering. Moving you to node " + p.node + "…", "lost");
      console.warn("vigil: moving to node " + p.node + " at " + p.url);
      const f = el("form");
      f.method = "post";
      f.action = p.url + "/ui/resume";
      const add = (name, value) => { const i = el("input"); i.type = "hidden"; i.name = name; i.value = value; f.appendChild(i); };
      add("ticket", st.ticket);
      add("next", location.pathname + location.search);
      add("drafts", JSON.stringify(allDrafts()));
      add("from", node);
      add("lost_at", String(this.lostAt));
      document.body.appendChild(f);
      this.unloading = true;
      f.submit();
    },
  };
  window.addEventListener("pagehide", () => { handover.unloading = true; });
  window.addEventListener("beforeunload", () => { handover.unloading = true; });
  function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

  // The notice after a move, shown on the new node's first page.
  function movedNotice() {
    let m = null;
    try { m = JSON.parse(sessionStorage.getItem("vigil.moved")); } catch (err) { m = null; }
    if (!m) return;
    sessionStorage.removeItem("vigil.moved");
    const when = m.lostAt ? new Date(m.lostAt).toLocaleTimeString("en-GB", { hour12: false }) : "";
    const took = m.lostAt ? " The move took " + ((m.at - m.lostAt) / 1000).toFixed(1) + " s." : "";
    handover.banner("Node " + m.from + " stopped answering" + (when ? " at " + when : "") + ". You are now on node " + m.to +
      ", still signed in." + took + " Unsent notes were kept.", "moved");
    window.vigilMoved = m;
    const b = document.getElementById("failover");
    b.addEventListener("click", () => { b.hidden = true; }, { once: true });
    setTimeout(() => { b.hidden = true; }, 30000);
  }

  // The queue as the server rendered it, until the stream's snapshot.
  document.querySelectorAll("#queue-body tr[data-id]").forEach((tr) => {
    const age = tr.querySelector("td.age");
    if (age) age.dataset.since = tr.dataset.raised;
  });
  localTimes();
  tick();
  filterBoard();
  if (page === "queue") {
    const first = document.querySelector("#queue-body tr[data-id]");
    if (first) select(first.dataset.id);
  }
  movedNotice();
  const restored = restoreDrafts();
  if (restored) toast(restored === 1 ? "Your unsent text was put back" : restored + " unsent fields were put back");
  window.vigilDraftsRestored = restored;
  connect();
  handover.start();
})();
