// Playback: up to 16 cameras at once (layouts 1, 2×2, 3×3, 4×4), driven by
// one clock and one timeline. Each tile follows the clock: it loads the
// recorded stretch holding the clock's time from video.mp4, keeps its
// <video> within a fraction of a second of the clock (playback rate nudges,
// a seek when far off), shows black with "No recording" in its gaps and
// rejoins when its footage resumes. Play, pause, speed, steps and seeks act
// on the clock, so on every tile at once.
//
// Times: the API speaks UTC; the page shows and reads the server's time zone.
// Mapping the picture to wall time (docs/PLAYBACK.md): players that honour
// the MP4 edit list start at X-Recording-Start; Chromium does not, so its
// media time 0 is X-First-Frame (the key frame before the start). H.265
// converted to H.264 starts exactly at the start.

import { api, seg, withQuery } from "./api.js";
import { bookmarks } from "./bookmarks.js";
import { EVENT_KINDS, eventList, kindLabel } from "./event_list.js";
import { holdControl } from "./holds.js";
import { h, fill, field } from "./dom.js";
import { clock, dateTime, dayStart, duration, fromInput, isHevc, localDate, localDateTimeInput, monthStart, nextDay, wall, zone } from "./format.js";
import { SyncClock } from "./syncclock.js";
import { Timeline } from "./timeline.js";

/** Longest piece requested at once (the server allows a day). */
const MAX_PIECE_MS = 6 * 3600 * 1000;
/** A piece starts this much before the clock, so short steps back stay in it. */
const PIECE_LEAD_MS = 10e3;
const LAYOUTS = [[1, "1"], [4, "2×2"], [9, "3×3"], [16, "4×4"]];
const SPEEDS = [0.25, 0.5, 1, 2, 4, 8, 16];
const ZOOMS = [
  [86400e3, "Whole day"], [6 * 3600e3, "6 hours"], [3600e3, "1 hour"],
  [15 * 60e3, "15 minutes"], [3 * 60e3, "3 minutes"], [30e3, "30 seconds"],
];
/** A busy tile's still picture is fetched again once the clock has moved this far, ms. */
const STILL_EVERY_MS = 1000;
/** How often tiles are brought into line with the clock, ms. */
const TICK_MS = 100;
/** Recordings are fetched again this often while the window reaches the present. */
const REFRESH_MS = 5000;
/** The clock waits at most this long for a loading tile before going on without it. */
const MAX_HOLD_MS = 3000;
/** Where media time is allowed to be off before a seek instead of a rate nudge, s (times the speed). */
const SEEK_DRIFT_S = 0.3;
/** When every tile is at least this far behind the clock, ms, the clock goes back to the leading one. */
const PULL_BACK_MS = 80;
const STORE_KEY = "cleannvr.playback";
/** After a jump to an event, the clock may sit a little before or after its
 * start (key frames, playing on): within this, ms, "next" and "previous"
 * step from that event rather than from the clock. */
const EVENT_NEAR_MS = 5000;

const SHORTCUTS = [
  ["Space or K", "Play / pause"],
  ["← / →", "Back / forward 10 s"],
  ["Shift + ← / →", "Back / forward 1 min"],
  [", / .", "One frame back / forward (pauses)"],
  ["[ / ]", "Slower / faster"],
  ["I / O", "Mark in / mark out (for an export)"],
  ["B", "Bookmark the moment shown"],
  ["E / Shift + E", "Next / previous camera event (of the kind chosen)"],
  ["P", "Back to the playhead on the timeline"],
  ["?", "Show these shortcuts"],
];

/** Whether this browser can play `codec` progressively (false for H.265 on Chromium/Linux). */
function canPlayFile(codec) {
  return document.createElement("video").canPlayType(`video/mp4; codecs="${codec}"`) !== "";
}

const iso = (ms) => new Date(ms).toISOString();

/** A form field's value for `ms`, in the server's zone. */
const localInput = (ms) => localDateTimeInput(new Date(ms));

export function mount(root, ctx) {
  const canExport = ctx.me.role === "admin" || ctx.me.role === "operator";
  const saved = (() => { try { return JSON.parse(localStorage.getItem(`${STORE_KEY}.${ctx.me.name}`)) || {}; } catch { return {}; } })();

  // --- Elements -------------------------------------------------------------
  const layoutBtns = LAYOUTS.map(([n, t]) => h("button", { type: "button", class: "quiet", dataset: { layout: String(n) }, "aria-pressed": "false", text: t, title: `${t} layout` }));
  const grid = h("div", { class: "pb-grid", id: "pb-grid" });
  const nowEl = h("output", { id: "pb-now", class: "pb-now" });
  const state = h("span", { id: "pb-state", class: "muted" });
  const playBtn = h("button", { type: "button", class: "primary", id: "pb-play", text: "▶ Play" });
  const btn = (id, text, label) => h("button", { type: "button", id, text, title: label, "aria-label": label });
  const m1 = btn("pb-back-1m", "−1 min", "Back 1 minute");
  const m10 = btn("pb-back-10s", "−10 s", "Back 10 seconds");
  const fb = btn("pb-frame-back", "◀|", "One frame back");
  const ff = btn("pb-frame", "|▶", "One frame forward");
  const p10 = btn("pb-fwd-10s", "+10 s", "Forward 10 seconds");
  const p1 = btn("pb-fwd-1m", "+1 min", "Forward 1 minute");
  const speedSel = h("select", { id: "pb-speed", "aria-label": "Speed" }, SPEEDS.map((s) => h("option", { value: String(s), text: s < 1 ? `${s === 0.25 ? "¼" : "½"}×` : `${s}×` })));
  speedSel.value = "1";
  const helpBtn = h("button", { type: "button", class: "quiet", id: "pb-help", text: "Shortcuts (?)" });
  const dayIn = h("input", { type: "date", id: "pb-day", name: "day" });
  const timeIn = h("input", { type: "time", id: "pb-time", step: 1 });
  /** A time typed into the Time field and not yet gone to: the playhead does not overwrite it. */
  let timeTyped = false;
  timeIn.addEventListener("input", () => { timeTyped = true; });
  const goBtn = h("button", { type: "submit", text: "Go" });
  const prev = h("button", { type: "button", id: "pb-prev", text: "◀ Day" , "aria-label": "Previous day" });
  const next = h("button", { type: "button", id: "pb-next", text: "Day ▶", "aria-label": "Next day" });
  const calBtn = h("button", { type: "button", class: "quiet", id: "pb-cal-btn", "aria-expanded": "false", "aria-controls": "pb-calendar", text: "Days with footage" });
  const calendar = h("div", { id: "pb-calendar", class: "calendar panel", hidden: true });
  const evKind = h("select", { id: "pb-ev-kind", "aria-label": "Kind of camera event" }, EVENT_KINDS.map(([v, t]) => h("option", { value: v, text: t })));
  const evPrev = h("button", { type: "button", id: "pb-ev-prev", title: "Shift + E" });
  const evNext = h("button", { type: "button", id: "pb-ev-next", title: "E" });
  const evStatus = h("span", { id: "pb-ev-status", class: "muted", role: "status", "aria-live": "polite" });
  const zoomSel = h("select", { id: "pb-zoom" }, h("option", { value: "", text: "Custom", disabled: true }), ZOOMS.map(([v, t]) => h("option", { value: String(v), text: t })));
  const windowLabel = h("span", { id: "pb-window", class: "muted" });
  const summary = h("p", { id: "pb-summary", class: "muted", role: "status", "aria-live": "polite" });
  const markIn = h("button", { type: "button", class: "quiet", id: "pb-mark-in", text: "Mark in (I)" });
  const markOut = h("button", { type: "button", class: "quiet", id: "pb-mark-out", text: "Mark out (O)" });
  const marksText = h("span", { id: "pb-marks", class: "muted" });
  const exportLink = h("a", { id: "pb-export", href: "#/export", hidden: true, text: "Export marked range…" });
  const clearMarks = h("button", { type: "button", class: "quiet", id: "pb-clear-marks", hidden: true, text: "Clear marks" });
  const help = h("dialog", { id: "pb-help-dialog", "aria-labelledby": "pb-help-title" },
    h("h2", { id: "pb-help-title", text: "Playback shortcuts" }),
    h("table", { class: "keys" }, h("tbody", {}, SHORTCUTS.map(([k, v]) => h("tr", {}, h("th", { scope: "row", text: k }), h("td", { text: v }))))),
    h("form", { method: "dialog" }, h("button", { type: "submit", class: "primary", text: "Close" })));

  /** The local day (`yyyy-mm-dd`) the date field and the summary name. */
  let viewDay = localDate(new Date());
  // Shown while archive-only footage is in view.
  const archLegend = h("span", { id: "pb-archive-legend", hidden: true }, h("i", { class: "archived" }), "Only in the archive");
  const timeline = new Timeline({ onSeek: (t, o) => seekTo(t, o), onView: () => viewChanged() });
  const bm = bookmarks({
    ctx,
    cameras: () => shownCameras().map((id) => ({ id, name: camName(id) })),
    now: () => clk.now(),
    jump: (t) => { timeline.follow = true; seekTo(t); },
    changed: () => loadRanges(),
  });
  const evList = eventList({
    kindSelect: evKind,
    view: () => timeline.view,
    cameraName: (id) => camName(id),
    cameraCount: () => shownCameras().length,
    play: (e, t) => {
      lastEvent = { camera: e.camera, start: e.start };
      timeline.follow = true;
      seekTo(t, { click: true });
    },
  });

  fill(root,
    h("div", { class: "view-head pb-head" }, h("h1", { text: "Playback" }),
      h("div", { class: "buttons layouts", role: "group", "aria-label": "Layout" }, layoutBtns),
      h("span", { class: "muted", text: `Times in ${zone}` })),
    h("div", { class: "pb-layout" }, h("div", { class: "pb-main" },
    grid,
    h("div", { class: "pb-bar", role: "group", "aria-label": "Playback controls" },
      h("div", { class: "pb-clock" }, nowEl, state),
      h("div", { class: "buttons" }, m1, m10, fb, playBtn, ff, p10, p1, speedSel, helpBtn)),
    h("section", { class: "timeline-wrap", "aria-label": "Timeline" },
      h("div", { class: "controls zoom" },
        h("form", { class: "buttons goto", onsubmit: (ev) => { ev.preventDefault(); goToInput(); } },
          field(`Day`, dayIn), field("Time", timeIn), goBtn, prev, next, calBtn),
        field("Zoom", zoomSel), windowLabel, timeline.back),
      calendar,
      timeline.axis, timeline.el,
      h("div", { class: "legend" },
        h("span", {}, h("i", { class: "rec" }), "Recorded"), h("span", {}, h("i", { class: "gap" }), "Nothing recorded"),
        h("span", {}, h("i", { class: "live" }), "Recording now"), h("span", {}, h("i", { class: "offline" }), "Camera offline or not recording"),
        h("span", {}, h("i", { class: "held" }), "On legal hold"), h("span", {}, h("i", { class: "bookmark" }), "Bookmark"), h("span", {}, h("i", { class: "marked" }), "Marked"),
        archLegend,
        h("span", { class: "muted", text: "Wheel to zoom, drag to scrub, click to play from there." })),
      summary,
      h("div", { class: "buttons marks" }, markIn, markOut, marksText, exportLink, clearMarks, bm.button),
      bm.list,
      // A legal hold on the marked range of the cameras shown.
      canExport ? holdControl(ctx, () => (marks.in !== null && marks.out !== null && marks.out > marks.in && shownCameras().length
        ? { cameras: shownCameras(), start: new Date(marks.in), end: new Date(marks.out) }
        : "Mark in and out first (I and O): the hold covers the marked range of the cameras shown."), "Hold the marked range (legal hold)", () => loadRanges()) : null)),
    // Beside the picture on a wide screen, under the timeline on a narrow one.
    h("aside", { class: "pb-events", id: "pb-events", "aria-labelledby": "pb-events-title" },
      h("h2", { id: "pb-events-title", text: "Camera events" }),
      h("div", { class: "buttons events-nav", role: "group", "aria-label": "Camera events" }, evKind, evList.controls),
      h("div", { class: "buttons events-step" }, evPrev, evNext),
      evStatus,
      evList.el)),
    help, bm.dialog);

  // --- State ----------------------------------------------------------------
  let cameras = [];
  const camById = new Map();
  let layout = 1;
  let slots = [];
  let tiles = [];
  const clk = new SyncClock(Date.now() - 60e3);
  /** camera → {ranges: [{start, end}], segments: [{start, end, codec}], window: [a, b]} */
  const rec = new Map();
  /** Camera id -> its events in the loaded window: [{start, end, kind, topic}] (ms). */
  const events = new Map();
  /** Camera id -> its bookmarks in the loaded window: [{id, t, name, note, created_by}]. */
  let marked = new Map();
  /** Camera id -> the legal holds in force on it touching the loaded window: [{id, start, end, reason, by}] (ms). */
  let held = new Map();
  let marks = { in: null, out: null };
  let gone = false;
  let holdSince = 0;
  let placed = false; // the clock has been put on something recorded (or asked for)
  let rangeTimer = null;
  let loadSeq = 0;
  let camTimer = null;
  const ticker = setInterval(tick, TICK_MS);
  const refresher = setInterval(() => { if (timeline.view[1] > Date.now() - 120e3) loadRanges(); }, REFRESH_MS);
  // Tests and tools read the clock from the page (`#pb-grid`.syncClock.now()).
  grid.syncClock = clk;
  clk.leader = () => {
    let best = null;
    for (const t of tiles) {
      if (t.el.dataset.state !== "playing" || t.video.seeking || t.video.paused || t.video.readyState < 3) continue;
      const p = presented(t);
      if (p !== null && (best === null || p > best)) best = p;
    }
    return best;
  };
  /** The last corrections (seeks, reloads, holds), for a person or a test asking why a tile drifted. */
  const syncLog = [];
  grid.syncLog = syncLog;
  const note = (what) => { syncLog.push({ at: Math.round(performance.now()), clock: Math.round(clk.now()), ...what }); if (syncLog.length > 50) syncLog.shift(); };

  // --- Tiles ----------------------------------------------------------------
  function makeTile(i) {
    const sel = h("select", { class: "tile-camera", "aria-label": `Camera of tile ${i + 1}` },
      h("option", { value: "", text: "— none —" }), cameras.map((c) => h("option", { value: c.id, text: c.name })));
    if (i === 0) sel.id = "pb-camera";
    const video = h("video", { muted: true, playsInline: true, preload: "auto", disablePictureInPicture: true, "aria-label": `Recorded video, tile ${i + 1}` });
    video.muted = true;
    if (i === 0) video.id = "pb-video";
    const overlay = h("div", { class: "overlay", hidden: true });
    const stamp = h("span", { class: "tile-time" });
    // Key-frame stills at the clock's time while no converter is free (H.265 this browser cannot play).
    const still = h("img", { class: "still", alt: `Still picture, tile ${i + 1}`, hidden: true });
    const el = h("article", { class: "tile pb-tile", dataset: { slot: String(i) } },
      h("div", { class: "tile-head" }, sel),
      h("div", { class: "screen" }, video, still, overlay, stamp));
    const t = { i, el, sel, video, overlay, stamp, still, cam: null, piece: null, loading: false, seq: 0, retryAt: 0, error: "", waitingSince: 0 };
    sel.addEventListener("change", () => { setSlot(i, sel.value); });
    video.addEventListener("loadedmetadata", () => { onMetadata(t); watchFrames(t); });
    video.addEventListener("error", () => onVideoError(t));
    showTile(t, "empty");
    return t;
  }

  /**
   * Follows the media time of the frame on screen (requestVideoFrameCallback),
   * so frame steps go from the frame shown to the next one even when the
   * camera's frame times are not on an exact grid.
   */
  function watchFrames(t) {
    const v = t.video;
    if (!v.requestVideoFrameCallback) return;
    if (t.frameCb) v.cancelVideoFrameCallback(t.frameCb);
    t.frameTime = null;
    const onFrame = (_, m) => {
      t.frameTime = m.mediaTime;
      t.el.dataset.frame = String(m.mediaTime);
      t.frameCb = gone ? 0 : v.requestVideoFrameCallback(onFrame);
    };
    t.frameCb = v.requestVideoFrameCallback(onFrame);
  }

  function setSlot(i, id) {
    slots[i] = id || "";
    ctx.notify("");
    const t = tiles[i];
    if (t) assign(t, slots[i]);
    remember();
    lanesChanged();
    loadRanges();
  }

  function assign(t, id) {
    t.sel.value = id || "";
    if (t.cam === (id || null)) return;
    t.cam = id || null;
    t.el.dataset.camera = t.cam || "";
    dropPiece(t);
    dropStill(t);
    t.error = "";
    t.retryAt = 0;
    showTile(t, t.cam ? "loading" : "empty");
  }

  function dropPiece(t) {
    t.seq++;
    t.frameTime = null;
    t.piece = null;
    t.loading = false;
    if (t.video.getAttribute("src")) {
      t.video.removeAttribute("src");
      t.video.load();
    }
  }

  function setLayout(n) {
    layout = n;
    for (const b of layoutBtns) b.setAttribute("aria-pressed", String(Number(b.dataset.layout) === n));
    grid.dataset.layout = String(n);
    while (slots.length < n) {
      // Fill new tiles with cameras not shown yet.
      const free = cameras.find((c) => !slots.includes(c.id));
      slots.push(free ? free.id : "");
    }
    slots = slots.slice(0, n);
    for (const t of tiles.slice(n)) { dropPiece(t); t.el.remove(); }
    tiles = tiles.slice(0, n);
    while (tiles.length < n) {
      const t = makeTile(tiles.length);
      tiles.push(t);
      grid.append(t.el);
    }
    tiles.forEach((t, i) => assign(t, slots[i]));
    remember();
    lanesChanged();
    loadRanges();
  }

  function remember() {
    try { localStorage.setItem(`${STORE_KEY}.${ctx.me.name}`, JSON.stringify({ layout, slots })); } catch { /* private mode */ }
    const q = new URLSearchParams({ cameras: slots.join(","), layout: String(layout), t: iso(clk.now()) });
    history.replaceState(null, "", `#/playback?${q}`);
  }

  /** Overlay and state of a tile: playing | loading | gap | empty | error | busy. */
  function showTile(t, kind, text = "") {
    if (t.el.dataset.state === kind && t.overlay.textContent === text) return;
    t.el.dataset.state = kind;
    const words = {
      gap: "No recording",
      loading: "Loading…",
      empty: "Choose a camera",
      playing: "",
    }[kind];
    const msg = text || words || "";
    t.overlay.textContent = msg;
    t.overlay.hidden = !msg;
    t.overlay.className = `overlay ${kind === "gap" || kind === "empty" ? "block" : kind === "error" || kind === "busy" ? "warn" : ""}`;
    t.video.classList.toggle("blank", kind === "gap" || kind === "empty");
    // Kept while the next try loads, so a busy tile does not blink every few seconds.
    if (kind !== "busy" && kind !== "loading") dropStill(t);
  }

  /**
   * While the converters are busy, a tile of H.265 footage shows the key frame
   * at or before the clock's time (`snapshot.jpg?at=`, decoded by the server
   * without a converter), fetched again as the clock moves on, instead of
   * only an error; the message becomes a banner under it.
   */
  async function showStill(t, T) {
    const cam = t.cam;
    if (t.stillBusy || (t.stillCam === cam && Math.abs(T - t.stillAt) < STILL_EVERY_MS)) return;
    t.stillBusy = true;
    t.stillCam = cam;
    t.stillAt = T;
    const seq = t.seq;
    try {
      const width = t.el.getBoundingClientRect().width > 400 ? 1280 : 640;
      const r = await fetch(withQuery(`/api/cameras/${seg(cam)}/snapshot.jpg`, { at: iso(T), width }), { credentials: "same-origin" });
      if (!r.ok || gone || seq !== t.seq || t.el.dataset.state !== "busy") return;
      const url = URL.createObjectURL(await r.blob());
      if (gone || seq !== t.seq || t.el.dataset.state !== "busy") { URL.revokeObjectURL(url); return; }
      if (t.stillUrl) URL.revokeObjectURL(t.stillUrl);
      t.stillUrl = url;
      t.still.src = url;
      t.still.hidden = false;
      t.still.dataset.at = String(Math.round(T));
      const frame = Date.parse(r.headers.get("x-frame-time"));
      t.still.dataset.frame = Number.isFinite(frame) ? String(frame) : "";
      // The tile's time is the still's own (its key frame), not the last video's.
      t.stamp.textContent = Number.isFinite(frame) ? clock(frame) : "";
      t.overlay.classList.add("banner");
    } catch { /* the next tick asks again */ } finally {
      t.stillBusy = false;
    }
  }

  function dropStill(t) {
    if (!t.still || t.still.hidden) return;
    t.still.hidden = true;
    t.still.removeAttribute("src");
    if (t.stillUrl) URL.revokeObjectURL(t.stillUrl);
    t.stillUrl = null;
    t.stillCam = null;
  }

  // --- Recordings -----------------------------------------------------------
  function shownCameras() { return [...new Set(slots.filter(Boolean))]; }

  /** Fetches the ranges of every camera shown around the visible window and the clock. */
  async function loadRanges() {
    const seq = ++loadSeq;
    const [va, vb] = timeline.view;
    const w = vb - va;
    const T = clk.now();
    const now = Date.now();
    let a = Math.min(va, T) - w / 2;
    let b = Math.min(now, Math.max(vb, T) + w / 2);
    if (b - a > 30 * 86400e3) a = b - 30 * 86400e3;
    if (b <= a) b = a + 1000;
    const ids = shownCameras();
    const results = await Promise.all(ids.map((id) => api("GET", withQuery(`/api/cameras/${seg(id)}/recordings`, { start: iso(a), end: iso(b) }))
      .then((r) => [id, r], (e) => [id, e])));
    // The cameras' own events, as marks; the timeline works without them.
    const found = ids.length ? await api("GET", withQuery("/api/events", { cameras: ids.join(","), start: iso(a), end: iso(b) })).catch(() => null) : null;
    const flags = await bm.load(ids, a, b).catch(() => null);
    // Legal holds in force, as marks under each held camera's footage; the timeline works without them.
    const holds = ids.length ? await api("GET", "/api/holds").catch(() => null) : null;
    if (gone || seq !== loadSeq) return;
    if (holds) {
      held = new Map();
      for (const x of holds.holds) {
        const start = Date.parse(x.start);
        const end = Date.parse(x.end);
        if (!x.active || end <= a || start >= b) continue;
        for (const cam of x.cameras) {
          if (!ids.includes(cam)) continue;
          held.set(cam, [...(held.get(cam) || []), { id: x.id, start, end, reason: x.reason, by: x.created_by }]);
        }
      }
    }
    if (flags) marked = flags;
    if (found) {
      evList.setEvents(found.events, found.truncated);
      events.clear();
      for (const e of found.events) {
        const list = events.get(e.camera) || [];
        const start = Date.parse(e.start);
        list.push({ start, end: e.end ? Date.parse(e.end) : e.active ? Date.now() : start, kind: e.kind, topic: e.topic, reason: e.end_reason });
        events.set(e.camera, list);
      }
    }
    const errs = [];
    for (const [id, r] of results) {
      if (r instanceof Error) { errs.push(`${camName(id)}: ${r.message}`); continue; }
      rec.set(id, {
        window: [a, b],
        ranges: r.ranges.map((x) => ({ start: Date.parse(x.start), end: Date.parse(x.end) })),
        // Read from the archive tier (no local copy): drawn hatched.
        archived: (r.archive_only_ranges || []).map((x) => ({ start: Date.parse(x.start), end: Date.parse(x.end) })),
        segments: r.segments.map((s) => ({ start: Date.parse(s.start), end: Date.parse(s.end), codec: s.codec })),
        offline: (r.offline || []).map((o) => ({ start: Date.parse(o.start), end: o.ongoing ? Date.now() : Date.parse(o.end), state: o.state, reason: o.reason })),
      });
    }
    if (errs.length) summary.textContent = `Could not load recordings: ${errs.join("; ")}`;
    if (!placed && ids.length) {
      // Nothing asked for: start a minute before the newest recording.
      const ends = ids.map((id) => rec.get(id)?.ranges.at(-1)?.end).filter(Boolean);
      if (ends.length) {
        placed = true;
        const newest = Math.max(...ends);
        const r = rec.get(ids.find((id) => rec.get(id)?.ranges.at(-1)?.end === newest)).ranges.at(-1);
        clk.seek(Math.max(r.start, newest - 60e3));
        timeline.follow = true;
        timeline.centre(clk.now());
      }
    }
    lanesChanged();
    if (!errs.length) describeDay();
  }

  function camName(id) { return camById.get(id)?.name || id; }

  function lanesChanged() {
    archLegend.hidden = !shownCameras().some((id) => rec.get(id)?.archived?.length);
    timeline.setLanes(shownCameras().map((id) => {
      const r = rec.get(id);
      const cam = camById.get(id);
      const ranges = r ? r.ranges : [];
      const recording = cam && cam.record !== false && cam.state === "streaming";
      const last = ranges.at(-1);
      return { id, name: camName(id), ranges, offline: r ? r.offline : [], archived: r ? r.archived : [], bookmarks: marked.get(id) || [], holds: held.get(id) || [], events: events.get(id) || [], recordingSince: recording ? (last && Date.now() - last.end < 5 * 60e3 ? last.end : Date.now() - 60e3) : null };
    }));
  }

  /** The line under the timeline: what is recorded on the day in view. */
  function describeDay() {
    const day = dayStart(viewDay).getTime();
    const dayEnd = nextDay(new Date(day)).getTime();
    const ids = shownCameras();
    if (!ids.length) { summary.textContent = "Choose a camera for a tile."; return; }
    const parts = [];
    let any = false;
    for (const id of ids) {
      const r = rec.get(id);
      if (!r) continue;
      const inDay = r.ranges.filter((x) => x.end > day && x.start < dayEnd);
      const total = inDay.reduce((n, x) => n + Math.min(x.end, dayEnd) - Math.max(x.start, day), 0);
      if (inDay.length) any = true;
      const gaps = Math.max(0, inDay.length - 1);
      parts.push(inDay.length
        ? `${ids.length > 1 ? `${camName(id)}: ` : ""}${duration(total / 1000)} recorded in ${inDay.length} stretch${inDay.length === 1 ? "" : "es"}, ${gaps} gap${gaps === 1 ? "" : "s"} between them`
        : `${ids.length > 1 ? `${camName(id)}: ` : ""}nothing recorded`);
    }
    summary.textContent = any ? `${localDate(new Date(day))}: ${parts.join("; ")}.` : "Nothing recorded on this day.";
  }

  // --- Days with footage -----------------------------------------------------
  /** The month shown in the calendar (its first day, `yyyy-mm-01`). */
  let calMonth = null;
  /** Days with footage of the cameras shown, from the server, and its zone. */
  let footageDays = new Set();
  let footageZone = "";
  /** `yyyy-mm-dd` -> events of the chosen kind that day, cameras shown, month in the calendar. */
  let eventDays = new Map();

  /** Counts per day of the calendar's month, from the server (same zone as the days with footage). */
  async function loadEventDays() {
    const ids = shownCameras();
    const a = dayStart(calMonth);
    const params = { start: iso(a.getTime()), end: iso(monthStart(a, 1).getTime()) };
    if (evKind.value) params.kind = evKind.value;
    const answers = await Promise.all(ids.map((id) => api("GET", withQuery(`/api/cameras/${seg(id)}/events/days`, params)).catch(() => null)));
    eventDays = new Map();
    for (const r of answers) for (const [d, n] of Object.entries(r ? r.days : {})) eventDays.set(d, (eventDays.get(d) || 0) + n);
  }

  async function loadFootageDays() {
    const ids = shownCameras();
    const answers = await Promise.all(ids.map((id) => api("GET", `/api/cameras/${seg(id)}/days`).catch(() => null)));
    footageDays = new Set(answers.flatMap((a) => (a ? a.days : [])));
    footageZone = (answers.find(Boolean) || {}).time_zone || "";
  }

  async function openCalendar(open) {
    calBtn.setAttribute("aria-expanded", String(open));
    calendar.hidden = !open;
    if (!open) return;
    calMonth = `${viewDay.slice(0, 7)}-01`;
    fill(calendar, h("p", { class: "muted", text: "Loading…" }));
    await Promise.all([loadFootageDays(), loadEventDays()]);
    if (!gone && !calendar.hidden) drawCalendar();
    const cur = calendar.querySelector('button[aria-current="date"]') || calendar.querySelector("button.day:not(:disabled)");
    if (cur) cur.focus();
  }

  /** A month grid, Monday first; days with footage are marked and say so to screen readers. */
  function drawCalendar(focusId) {
    const first = dayStart(calMonth);
    const monthName = first.toLocaleDateString(undefined, { month: "long", year: "numeric", timeZone: zone });
    const lead = (wall(first).wd + 6) % 7;
    const month = wall(first).m;
    const cells = [];
    for (let i = 0; i < lead; i++) cells.push(h("td", {}));
    for (let d = first; wall(d).m === month; d = nextDay(d)) {
      const name = localDate(d);
      const has = footageDays.has(name);
      const future = d.getTime() > Date.now();
      const n = eventDays.get(name) || 0;
      const b = h("button", {
        type: "button", class: `day${has ? " has-footage" : ""}`, text: String(wall(d).d),
        dataset: { day: name, events: String(n) }, disabled: future,
        "aria-label": `${d.toLocaleDateString(undefined, { weekday: "long", day: "numeric", month: "long", year: "numeric", timeZone: zone })}: ${has ? "footage" : "no footage"}${n ? `, ${n} ${kindWord(n)}` : ""}`,
        "aria-current": name === viewDay ? "date" : null,
      }, n ? h("span", { class: "ev-count", "aria-hidden": "true", text: n > 999 ? "999+" : String(n) }) : null);
      b.addEventListener("click", () => { openCalendar(false); showDay(dayStart(name)); calBtn.focus(); });
      cells.push(h("td", {}, b));
    }
    const rows = [];
    for (let i = 0; i < cells.length; i += 7) rows.push(h("tr", {}, cells.slice(i, i + 7)));
    const shift = async (n) => {
      calMonth = localDate(monthStart(dayStart(calMonth), n));
      await loadEventDays();
      if (gone || calendar.hidden) return;
      // Redrawn: keep the keyboard on the month button that was pressed.
      drawCalendar(n < 0 ? "pb-cal-prev" : "pb-cal-next");
    };
    const days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const count = [...footageDays].filter((x) => x.startsWith(calMonth.slice(0, 7))).length;
    fill(calendar,
      h("div", { class: "cal-head" },
        h("button", { type: "button", class: "quiet", id: "pb-cal-prev", text: "◀", "aria-label": "Previous month", onclick: () => shift(-1) }),
        h("strong", { id: "pb-cal-month", text: monthName }),
        h("button", { type: "button", class: "quiet", id: "pb-cal-next", text: "▶", "aria-label": "Next month", onclick: () => shift(1) })),
      h("table", { class: "cal", "aria-label": `${monthName}: ${count} day${count === 1 ? "" : "s"} with footage` },
        h("thead", {}, h("tr", {}, days.map((d) => h("th", { scope: "col", text: d })))),
        h("tbody", {}, rows)),
      h("p", { class: "muted" }, h("i", { class: "dot" }), ` Footage recorded that day${footageZone && footageZone !== zone ? ` (days in the server's time zone, ${footageZone})` : ""}.`),
      h("p", { class: "muted" }, h("span", { class: "ev-count", text: "3" }), ` Camera events that day (${evKindEntry()[1].toLowerCase()}).`));
    if (focusId) calendar.querySelector(`#${focusId}`).focus();
  }

  function rangeAt(id, T) {
    const r = rec.get(id);
    return r ? r.ranges.find((x) => T >= x.start && T < x.end) : undefined;
  }

  function nextRange(id, T) {
    const r = rec.get(id);
    return r ? r.ranges.find((x) => x.start > T) : undefined;
  }

  function codecAt(id, T) {
    const r = rec.get(id);
    if (!r) return "";
    const s = r.segments.find((x) => T >= x.start && T < x.end) || r.segments.find((x) => x.start > T);
    return s ? s.codec : "";
  }

  // --- Pieces of video --------------------------------------------------------
  /** Loads the video of `range` for tile `t` starting near `T`. */
  async function loadPiece(t, T, range) {
    const seq = ++t.seq;
    const cam = t.cam;
    t.loading = true;
    t.piece = null;
    const codec = codecAt(cam, T);
    const convert = isHevc(codec) && !canPlayFile(codec);
    // A conversion starts exactly at its start and cannot seek far: start at the clock.
    let start = convert ? T : Math.max(range.start, T - PIECE_LEAD_MS);
    let end = Math.min(range.end, start + MAX_PIECE_MS);
    for (let attempt = 0; attempt < 3; attempt++) {
      const params = { start: iso(start), end: iso(end) };
      if (convert) params.codec = "h264";
      const url = withQuery(`/api/cameras/${seg(cam)}/video.mp4`, params);
      // HEAD first: it says what the file covers and turns refusals into words.
      let res;
      try {
        res = await fetch(url, { method: "HEAD", credentials: "same-origin", cache: "no-store" });
      } catch {
        return failPiece(t, seq, "The server cannot be reached.");
      }
      if (gone || seq !== t.seq) return;
      if (res.ok) {
        const hd = (n) => res.headers.get(n);
        const recStart = Date.parse(hd("x-recording-start")) || start;
        const recEnd = Date.parse(hd("x-recording-end")) || end;
        t.piece = {
          url, start: recStart, end: recEnd, zero: recStart, converted: convert,
          firstFrame: Date.parse(hd("x-first-frame")) || recStart, leadIn: Number(hd("x-lead-in-ms")) || 0, ready: false,
        };
        t.video.src = url;
        t.video.playbackRate = clk.rate;
        return;
      }
      let body = null;
      if (res.status !== 401 && res.status !== 503) {
        try { body = await (await fetch(url, { credentials: "same-origin", cache: "no-store" })).json(); } catch { /* none */ }
        if (gone || seq !== t.seq) return;
      }
      if (res.status === 409 && body && body.parts) {
        // The camera changed resolution or codec settings inside the range:
        // play the part holding the clock.
        const part = body.parts.map((p) => ({ start: Date.parse(p.start), end: Date.parse(p.end) })).find((p) => T >= p.start - 1000 && T < p.end);
        if (part) { start = Math.max(start, part.start); end = Math.min(end, part.end); continue; }
      }
      if (res.status === 401) { api("GET", "/api/me").catch(() => {}); return failPiece(t, seq, "Signed out."); }
      if (res.status === 503 && convert) {
        return failPiece(t, seq, "This camera records H.265, which this browser cannot play, and the server's converters are busy. Trying again shortly.", "busy");
      }
      return failPiece(t, seq, `Cannot play ${clock(start)} – ${clock(end)}: ${(body && body.detail) || res.statusText}`);
    }
    return failPiece(t, seq, "The recording keeps changing its settings here.");
  }

  function failPiece(t, seq, message, kind = "error") {
    if (seq !== t.seq) return;
    t.loading = false;
    t.piece = null;
    t.error = message;
    t.retryAt = Date.now() + 5000;
    showTile(t, kind, message);
  }

  function onMetadata(t) {
    const p = t.piece;
    if (!p) return;
    // An ignored edit list shows as a duration that includes the lead-in:
    // then media time 0 is the key frame before the requested start.
    if (p.leadIn && Number.isFinite(t.video.duration)) {
      const withLeadIn = (p.end - p.firstFrame) / 1000;
      const without = (p.end - p.start) / 1000;
      if (Math.abs(t.video.duration - withLeadIn) < Math.abs(t.video.duration - without)) p.zero = p.firstFrame;
    }
    p.ready = true;
    t.loading = false;
    // The wall time of media time 0, for tools and tests: presented = zero + currentTime.
    t.el.dataset.zero = String(p.zero);
    t.video.currentTime = Math.max(0, (clk.now() - p.zero) / 1000);
  }

  function onVideoError(t) {
    if (!t.video.getAttribute("src") || !t.piece) return;
    const err = t.video.error;
    const p = t.piece;
    failPiece(t, t.seq, p.converted
      ? "The server's converters are busy; trying again shortly."
      : `The browser could not play this recording (${err ? err.message || `error ${err.code}` : "media error"}).`, p.converted ? "busy" : "error");
  }

  /** The wall time of the picture a tile shows now, or null. */
  function presented(t) {
    if (!t.piece || !t.piece.ready) return null;
    return t.piece.zero + t.video.currentTime * 1000;
  }

  /** Brings one tile into line with the clock's time `T`. Returns true when the clock should wait for it. */
  function syncTile(t, T, running, playing) {
    const v = t.video;
    if (!t.cam) { showTile(t, "empty"); return false; }
    const p = t.piece;
    const covered = p && T >= p.start - 50 && T < p.end - 50;
    const range = rangeAt(t.cam, T);
    if (!covered && !range) {
      // A gap for this camera: black, and get ready for where it resumes.
      if (!v.paused) v.pause();
      showTile(t, "gap", rec.has(t.cam) ? (T > Date.now() - 90e3 && !nextRange(t.cam, T) ? "No recording yet" : "No recording") : "Loading…");
      const nx = nextRange(t.cam, T);
      if (nx && running && nx.start - T < 3000 * clk.rate && !t.loading && !(p && p.start <= nx.start && p.end > nx.start) && Date.now() >= t.retryAt) {
        loadPiece(t, nx.start, nx);
      }
      return false;
    }
    if (!covered) {
      if (t.el.dataset.state === "busy") showStill(t, T);
      if (t.loading || Date.now() < t.retryAt) return t.loading;
      loadPiece(t, T, range);
      showTile(t, "loading");
      return true;
    }
    if (!p.ready) return true;
    const target = (T - p.zero) / 1000;
    const drift = v.currentTime - target;
    t.stamp.textContent = clock(p.zero + v.currentTime * 1000);
    // A seek under way: the clock waits for it (the picture is frozen meanwhile).
    if (v.seeking) return true;
    if (!running) {
      if (!v.paused) v.pause();
      // Paused: show exactly the clock's frame (steps are one frame).
      if (Math.abs(drift) > 0.001) v.currentTime = Math.max(0, target);
      showTile(t, "playing");
      // Held for another tile, or paused: still waiting if this one has too little to play on.
      return playing && v.readyState < 3;
    }
    const rate = clk.rate;
    if (p.converted) {
      // A conversion is streamed, not seekable far: far off means load it again from the clock.
      if (Math.abs(drift) > Math.max(3, rate * 2) && Date.now() >= t.retryAt) { loadPiece(t, T, range || { start: p.start, end: p.end }); return true; }
    } else if (Math.abs(drift) > SEEK_DRIFT_S * Math.max(1, rate / 2)) {
      // Aim a little ahead at speed: the seek itself takes time.
      note({ tile: t.i, seek: Math.round(drift * 1000), ready: v.readyState });
      v.currentTime = Math.max(0, target + (rate > 1 ? 0.05 * rate : 0));
      return false;
    }
    // Small drift: nudge the rate (at most ±10 %) rather than seek, so the picture runs smoothly.
    const nudged = rate * (1 - Math.max(-0.1, Math.min(0.1, drift)));
    v.playbackRate = Math.min(16, Math.max(0.0625, nudged));
    if (v.paused && !v.ended) v.play().catch(() => { /* muted: allowed; else the next tick tries again */ });
    showTile(t, "playing");
    return v.readyState < 3;
  }

  function tick() {
    if (gone) return;
    // Never past what is being recorded: at the present, fall back to 1×.
    if (clk.now() > Date.now()) { clk.seek(Date.now()); setSpeed(1); }
    if (clk.running()) {
      // Every tile behind the clock means this machine decodes slower than
      // real time: the clock waits for the leading tile instead of making
      // all of them seek (which costs more decoding still).
      const lags = tiles.filter((t) => t.el.dataset.state === "playing" && !t.video.seeking && !t.video.paused && t.video.readyState >= 3)
        .map((t) => presented(t) - clk.now()).filter((l) => Number.isFinite(l));
      if (lags.length && lags.every((l) => l < -PULL_BACK_MS)) {
        const lead = Math.max(...lags);
        clk.seek(clk.now() + lead);
        note({ pull: Math.round(lead) });
      }
    }
    const T = clk.now();
    let wait = false;
    for (const t of tiles) if (syncTile(t, T, clk.running(), clk.playing)) wait = true;
    // Hold the clock for a tile that has footage but no picture yet, not for ever.
    if (wait && clk.playing) {
      if (!holdSince) { holdSince = Date.now(); note({ hold: tiles.map((t) => t.el.dataset.state + (t.video.seeking ? "/seeking" : "") + t.video.readyState).join(",") }); }
      clk.hold(Date.now() - holdSince < MAX_HOLD_MS);
    } else {
      holdSince = 0;
      clk.hold(false);
    }
    const shown = clk.now();
    nowEl.textContent = dateTime(shown);
    nowEl.dataset.t = String(Math.round(shown));
    // The Time field shows the time under the playhead, unless the user is typing one to go to.
    if (!timeTyped && document.activeElement !== timeIn) timeIn.value = localInput(shown).slice(11, 19);
    state.textContent = `${clk.playing ? (clk.held ? "waiting for video" : "playing") : "paused"} · ${speedSel.selectedOptions[0]?.textContent || ""}`;
    timeline.setPlayhead(shown);
    evList.setPlayhead(shown);
  }

  // --- Clock actions ----------------------------------------------------------
  function play() { clk.play(); syncPlayButton(); }
  function pause() { clk.pause(); syncPlayButton(); }
  function toggle() { if (clk.playing) pause(); else play(); }
  function syncPlayButton() {
    playBtn.textContent = clk.playing ? "❚❚ Pause" : "▶ Play";
    playBtn.setAttribute("aria-label", clk.playing ? "Pause" : "Play");
  }

  function setSpeed(s) {
    clk.setRate(s);
    speedSel.value = String(s);
  }

  function stepSpeed(dir) {
    const i = SPEEDS.indexOf(clk.rate);
    setSpeed(SPEEDS[Math.max(0, Math.min(SPEEDS.length - 1, (i < 0 ? 2 : i) + dir))]);
  }

  function seekTo(t, { final = true, click = false } = {}) {
    timeTyped = false;
    clk.seek(Math.min(t, Date.now()));
    placed = true;
    if (click) play();
    // Far from what is loaded: fetch the ranges there too.
    if (final) {
      const r = rec.get(shownCameras()[0]);
      if (!r || t < r.window[0] || t > r.window[1]) loadRanges();
      remember();
    }
    tick();
  }

  const jump = (ms) => seekTo(clk.now() + ms);

  /** Frames per second of the first camera shown (25 when unknown). */
  function fps() {
    const cam = camById.get(shownCameras()[0]);
    const f = cam && cam.fps;
    return f && f > 1 && f < 121 ? Math.round(f) : 25;
  }

  function frame(dir) {
    pause();
    // From the frame on screen in the first tile to the middle of its
    // neighbour, so frame times a little off the grid still land on it.
    const t = tiles.find((x) => x.piece && x.piece.ready);
    const d = 1000 / fps();
    if (t && t.frameTime !== null && t.frameTime !== undefined && !t.video.seeking) {
      clk.seek(t.piece.zero + t.frameTime * 1000 + dir * d + d / 2);
    } else clk.seek(clk.now() + dir * d);
    tick();
  }

  function mark(which) {
    marks[which] = Math.round(clk.now());
    if (marks.in !== null && marks.out !== null && marks.out < marks.in) [marks.in, marks.out] = [marks.out, marks.in];
    showMarks();
  }

  function showMarks() {
    timeline.setMarks(marks.in, marks.out);
    const both = marks.in !== null && marks.out !== null && marks.out > marks.in;
    marksText.textContent = [marks.in !== null ? `In ${dateTime(marks.in)}` : "", marks.out !== null ? `Out ${dateTime(marks.out)}` : ""].filter(Boolean).join(" · ");
    clearMarks.hidden = marks.in === null && marks.out === null;
    exportLink.hidden = !(canExport && both);
    if (both) {
      const q = new URLSearchParams({ cameras: shownCameras().join(","), camera: shownCameras()[0] || "", start: localInput(marks.in), end: localInput(marks.out) });
      exportLink.href = `#/export?${q}`;
    }
  }

  function goToInput() {
    if (!dayIn.value) { dayIn.focus(); return; }
    const d = dayStart(dayIn.value);
    if (timeIn.value) {
      const t = fromInput(`${dayIn.value}T${timeIn.value}`);
      if (!Number.isNaN(t.getTime())) d.setTime(t.getTime());
      ctx.notify("");
      timeline.follow = true;
      timeline.centre(d.getTime());
      seekTo(d.getTime(), { click: true });
    } else showDay(d);
  }

  /** Shows a whole local day on the timeline (the clock stays where it is). */
  function showDay(d) {
    ctx.notify("");
    const a = d.getTime();
    const b = nextDay(d).getTime();
    // Today's view is pulled back to end near now, so its middle can fall on
    // yesterday: the day asked for is the day in view.
    viewDay = localDate(d);
    dayIn.value = viewDay;
    timeline.setView(a, b, true);
  }

  function viewChanged() {
    const [a, b] = timeline.view;
    const w = b - a;
    windowLabel.textContent = w > 86400e3 ? `${dateTime(a).slice(0, 16)} – ${dateTime(b).slice(0, 16)}` : `${clock(a)} – ${clock(b)}`;
    const z = ZOOMS.find(([v]) => Math.abs(v - w) < 1000);
    zoomSel.value = z ? String(z[0]) : "";
    // The day in view changes once the window has left it (so a whole day stays
    // that day while the timeline grows), to the day of the window's middle.
    const d0 = dayStart(viewDay).getTime();
    if (!(a < nextDay(new Date(d0)).getTime() && b > d0)) viewDay = localDate(new Date((a + b) / 2));
    if (document.activeElement !== dayIn) dayIn.value = viewDay;
    next.disabled = nextDay(dayStart(viewDay)).getTime() > Date.now();
    clearTimeout(rangeTimer);
    rangeTimer = setTimeout(loadRanges, 250);
    evList.refresh();
    describeDay();
  }

  // --- Camera events: previous / next ---------------------------------------
  const evKindEntry = () => EVENT_KINDS.find(([v]) => v === evKind.value) || EVENT_KINDS[0];
  const kindWord = (n) => `${evKindEntry()[2]}${n === 1 ? "" : "s"}`;
  /** The event last jumped to: {camera, start} (ms). */
  let lastEvent = null;
  function labelEventButtons() {
    const w = evKindEntry()[0] ? evKindEntry()[1].toLowerCase() : "event";
    evPrev.textContent = `◀ Previous ${w}`;
    evNext.textContent = `Next ${w} ▶`;
  }
  labelEventButtons();

  /** Jumps to the shown cameras' nearest event of the chosen kind before (dir < 0) or after the clock. */
  async function stepEvent(dir) {
    const ids = shownCameras();
    if (!ids.length) return;
    const T = clk.now();
    const near = lastEvent && Math.abs(T - lastEvent.start) < EVENT_NEAR_MS;
    // Times here are whole ms and the server's are ns: an event whose start
    // reads as the clock's ms is the one shown, so "next" asks from 1 ms on.
    const at = dir > 0 ? (near ? Math.max(T, lastEvent.start) : T) + 1 : (near ? Math.min(T, lastEvent.start) : T - 2000);
    const params = { at: iso(at) };
    if (evKind.value) params.kind = evKind.value;
    evStatus.textContent = "Looking…";
    let answers;
    try {
      answers = await Promise.all(ids.map((id) => api("GET", withQuery(`/api/cameras/${seg(id)}/events/adjacent`, params))));
    } catch (e) {
      evStatus.textContent = `Could not look up events: ${e.message}`;
      return;
    }
    if (gone) return;
    const found = answers.map((r) => (dir > 0 ? r.next : r.previous)).filter(Boolean)
      .map((e) => ({ ...e, ms: Date.parse(e.start) }));
    const w = evKindEntry()[0] ? evKindEntry()[2] : "camera event";
    if (!found.length) {
      evStatus.textContent = dir > 0 ? `No later ${w}.` : `No earlier ${w}.`;
      return;
    }
    const e = found.reduce((best, x) => ((dir > 0 ? x.ms < best.ms : x.ms > best.ms) ? x : best));
    lastEvent = { camera: e.camera, start: e.ms };
    const kind = kindLabel(e.kind);
    evStatus.textContent = `${kind}${ids.length > 1 ? ` on ${camName(e.camera)}` : ""} at ${dateTime(e.ms)}${e.end ? `, ${duration(Math.max(0, Date.parse(e.end) - e.ms) / 1000)}` : e.active ? ", still on" : ""}`;
    evStatus.dataset.start = String(e.ms);
    if (localDate(new Date(e.ms)) !== viewDay) { viewDay = localDate(new Date(e.ms)); dayIn.value = viewDay; }
    timeline.follow = true;
    seekTo(e.ms);
  }

  // --- Events -----------------------------------------------------------------
  evPrev.addEventListener("click", () => stepEvent(-1));
  evNext.addEventListener("click", () => stepEvent(1));
  evKind.addEventListener("change", () => { labelEventButtons(); lastEvent = null; evStatus.textContent = ""; });
  for (const b of layoutBtns) b.addEventListener("click", () => { ctx.notify(""); setLayout(Number(b.dataset.layout)); });
  playBtn.addEventListener("click", toggle);
  m1.addEventListener("click", () => jump(-60e3));
  m10.addEventListener("click", () => jump(-10e3));
  p10.addEventListener("click", () => jump(10e3));
  p1.addEventListener("click", () => jump(60e3));
  fb.addEventListener("click", () => frame(-1));
  ff.addEventListener("click", () => frame(1));
  speedSel.addEventListener("change", () => setSpeed(Number(speedSel.value)));
  helpBtn.addEventListener("click", () => help.showModal());
  markIn.addEventListener("click", () => mark("in"));
  markOut.addEventListener("click", () => mark("out"));
  clearMarks.addEventListener("click", () => { marks = { in: null, out: null }; showMarks(); });
  zoomSel.addEventListener("change", () => {
    const w = Number(zoomSel.value);
    if (!w) return;
    const c = timeline.inView(clk.now()) ? clk.now() : (timeline.view[0] + timeline.view[1]) / 2;
    timeline.centre(c, w);
  });
  const shiftDay = (n) => showDay(nextDay(dayStart(dayIn.value || localDate(new Date())), n));
  calBtn.addEventListener("click", () => openCalendar(calendar.hidden));
  calendar.addEventListener("keydown", (e) => { if (e.key === "Escape") { e.stopPropagation(); openCalendar(false); calBtn.focus(); } });
  prev.addEventListener("click", () => shiftDay(-1));
  next.addEventListener("click", () => shiftDay(1));
  dayIn.addEventListener("change", () => { if (dayIn.value) showDay(dayStart(dayIn.value)); });

  function onKey(ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const tag = ev.target && ev.target.tagName;
    if (["INPUT", "SELECT", "TEXTAREA"].includes(tag) || help.open || bm.dialog.open || calendar.contains(ev.target)) return;
    const k = ev.key;
    const act = {
      " ": toggle, k: toggle, K: toggle,
      ArrowLeft: () => jump(ev.shiftKey ? -60e3 : -10e3),
      ArrowRight: () => jump(ev.shiftKey ? 60e3 : 10e3),
      ",": () => frame(-1), ".": () => frame(1), "<": () => frame(-1), ">": () => frame(1),
      "[": () => stepSpeed(-1), "]": () => stepSpeed(1),
      i: () => mark("in"), I: () => mark("in"), o: () => mark("out"), O: () => mark("out"),
      p: () => timeline.toPlayhead(), P: () => timeline.toPlayhead(),
      b: () => bm.open(), B: () => bm.open(),
      e: () => stepEvent(1), E: () => stepEvent(-1),
      "?": () => help.showModal(),
    }[k];
    if (!act) return;
    // Space on a focused button would press it as well.
    ev.preventDefault();
    act();
  }
  document.addEventListener("keydown", onKey);

  // --- Start ------------------------------------------------------------------
  (async () => {
    let r;
    try {
      r = await api("GET", "/api/cameras");
    } catch (e) {
      summary.textContent = `Could not load cameras: ${e.message}`;
      return;
    }
    if (gone) return;
    cameras = r.cameras;
    for (const c of cameras) camById.set(c.id, c);
    if (!cameras.length) { summary.textContent = "No cameras are configured for you."; return; }
    const known = (id) => camById.has(id);
    const p = ctx.params;
    let want = (p.get("cameras") || "").split(",").filter((id) => id === "" || known(id));
    if (!want.some(Boolean) && known(p.get("camera"))) want = [p.get("camera")];
    if (!want.some(Boolean) && Array.isArray(saved.slots)) want = saved.slots.filter((id) => id === "" || known(id));
    if (!want.some(Boolean)) want = [cameras[0].id];
    const n = Number(p.get("layout")) || (p.get("cameras") ? 0 : Number(saved.layout)) || 0;
    const fit = LAYOUTS.find(([l]) => l >= Math.max(n, want.length)) || LAYOUTS[LAYOUTS.length - 1];
    slots = want.slice(0, fit[0]);
    const t = p.get("t");
    const at = t ? (/^\d+$/.test(t) ? Number(t) : Date.parse(t)) : NaN;
    const day = p.get("day");
    if (Number.isFinite(at)) {
      clk.seek(Math.min(at, Date.now()));
      placed = true;
      timeline.view = [at - 5 * 60e3, at + 5 * 60e3];
      timeline.centre(at, 15 * 60e3);
    } else if (day && /^\d{4}-\d\d-\d\d$/.test(day)) {
      showDay(dayStart(day));
    } else {
      timeline.centre(Date.now() - 7.5 * 60e3, 15 * 60e3);
    }
    dayIn.max = localDate(new Date());
    const oldest = cameras.map((c) => c.oldest && Date.parse(c.oldest)).filter(Boolean);
    if (oldest.length) dayIn.min = localDate(new Date(Math.min(...oldest)));
    setLayout(fit[0]);
    if (p.get("play") === "1") play();
    syncPlayButton();
    camTimer = setInterval(refreshCameras, 10000);
  })();

  /** Camera status (recording or not, frame rate) for the lanes. */
  async function refreshCameras() {
    if (gone) return;
    try {
      const r = await api("GET", "/api/cameras");
      for (const c of r.cameras) camById.set(c.id, c);
      lanesChanged();
    } catch { /* the next time */ }
  }

  return () => {
    gone = true;
    clearInterval(ticker);
    clearInterval(refresher);
    clearInterval(camTimer);
    clearTimeout(rangeTimer);
    document.removeEventListener("keydown", onKey);
    for (const t of tiles) dropPiece(t);
    if (help.open) help.close();
    if (bm.dialog.open) bm.dialog.close();
  };
}
