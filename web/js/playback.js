// Playback: pick a camera and a day; a timeline shows what was recorded and
// the gaps; clicking plays video.mp4 from that moment to the end of that
// recorded stretch, then continues with the next one.
//
// Times: the day is the browser's local day; the API gets UTC. Mapping the
// picture to wall time (docs/PLAYBACK.md): players that honour the MP4 edit
// list start at X-Recording-Start; Chromium does not, so its media time 0
// is X-First-Frame (the key frame before the start) and the player seeks
// X-Lead-In-Ms forward. H.265 converted to H.264 starts exactly at start.

import { holdControl } from "./holds.js";
import { api, seg, withQuery } from "./api.js";
import { h, fill, field } from "./dom.js";
import { clock, dateTime, dayStart, duration, isHevc, localDate, nextDay, zone } from "./format.js";

/** Longest piece requested at once (the server allows a day). */
const MAX_PIECE_MS = 6 * 3600 * 1000;
/** Most ranges listed under the timeline. */
const MAX_LIST = 200;
/** Zoom levels of the timeline: the width of the visible window. */
const ZOOMS = [
  [24 * 3600e3, "Whole day"],
  [6 * 3600e3, "6 hours"],
  [3600e3, "1 hour"],
  [15 * 60e3, "15 minutes"],
  [3 * 60e3, "3 minutes"],
];

/** Whether this browser can play `codec` progressively (false for H.265 on Chromium/Linux). */
function canPlayFile(codec) {
  const v = document.createElement("video");
  return v.canPlayType(`video/mp4; codecs="${codec}"`) !== "";
}

export function mount(root, ctx) {
  const camSel = h("select", { id: "pb-camera", name: "camera" });
  const dayIn = h("input", { type: "date", id: "pb-day", name: "day", required: true });
  const prev = h("button", { type: "button", id: "pb-prev", text: "◀ Previous day" });
  const next = h("button", { type: "button", id: "pb-next", text: "Next day ▶" });
  const today = h("button", { type: "button", class: "quiet", id: "pb-today", text: "Today" });
  const timeIn = h("input", { type: "time", id: "pb-time", step: 1 });
  const goBtn = h("button", { type: "submit", text: "Play from this time" });
  const zoomSel = h("select", { id: "pb-zoom" }, ZOOMS.map(([v, t]) => h("option", { value: String(v), text: t })));
  const panL = h("button", { type: "button", class: "quiet", id: "pb-earlier", text: "◀ Earlier", "aria-label": "Show earlier" });
  const panR = h("button", { type: "button", class: "quiet", id: "pb-later", text: "Later ▶", "aria-label": "Show later" });
  const summary = h("p", { id: "pb-summary", class: "muted", role: "status", "aria-live": "polite" });
  const windowLabel = h("span", { id: "pb-window", class: "muted" });
  const timeline = h("div", { class: "timeline", id: "pb-timeline", role: "group", "aria-label": "Timeline of recordings; with a keyboard use the list below or the time field" });
  const playhead = h("div", { class: "playhead", hidden: true });
  const hover = h("div", { class: "hover-time", hidden: true });
  const axis = h("div", { class: "axis", "aria-hidden": "true" });
  const video = h("video", { id: "pb-video", controls: true, playsInline: true, preload: "auto", "aria-label": "Recorded video" });
  const now = h("span", { id: "pb-now", class: "now", "aria-live": "off" });
  const what = h("span", { id: "pb-what", class: "muted" });
  const exportLink = h("a", { id: "pb-export", href: "#/export", hidden: true, text: "Export this stretch…" });
  const perr = h("p", { class: "error", role: "alert", id: "pb-error" });
  const player = h("section", { class: "player", hidden: true, "aria-label": "Player" }, video, h("div", { class: "caption" }, now, what, exportLink), perr);
  const list = h("div", { class: "ranges-list" });
  const canExport = ctx.me.role === "admin" || ctx.me.role === "operator";

  fill(root,
    h("div", { class: "view-head" }, h("h1", { text: "Playback" })),
    h("form", { class: "controls", onsubmit: (ev) => { ev.preventDefault(); playAtInput(); } },
      field("Camera", camSel),
      field(`Day (${zone})`, dayIn),
      h("div", { class: "buttons" }, prev, next, today),
      field("Time", timeIn),
      h("div", { class: "buttons" }, goBtn)),
    h("section", { class: "timeline-wrap", "aria-label": "Timeline" },
      summary,
      h("div", { class: "controls zoom" }, field("Zoom", zoomSel), h("div", { class: "buttons" }, panL, panR), windowLabel),
      axis, timeline,
      h("div", { class: "legend", "aria-hidden": "true" },
        h("span", {}, h("i", { class: "rec" }), "Recorded"), h("span", {}, h("i", { class: "gap" }), "Nothing recorded"),
        h("span", { text: "Click the bar to play from that moment." }))),
    player, list);
  fill(timeline, playhead, hover);
  // Holds what is playing: this camera over the piece shown in the caption.
  if (canExport) {
    player.append(holdControl(ctx, () => playing
      ? { cameras: [playing.camera], start: new Date(playing.start), end: new Date(playing.end) }
      : "Play something first: the hold covers what is playing.", "Hold this footage (legal hold)"));
  }

  let cameras = [];
  let day = 0; // ms, local midnight
  let dayEnd = 0;
  let view = [0, 0]; // visible window of the timeline, ms
  let ranges = []; // [{start, end}] ms
  let segments = [];
  let playing = null; // {camera, zero, start, end}: zero = wall time of media time 0
  let loadSeq = 0;
  let gone = false;
  let focus = 0; // the moment the timeline window is centred on

  const pct = (t) => `${(((t - view[0]) / (view[1] - view[0])) * 100).toFixed(4)}%`;
  const iso = (ms) => new Date(ms).toISOString();
  const clamp = (v, a, b) => Math.min(b, Math.max(a, v));

  function setHash() {
    const q = new URLSearchParams({ camera: camSel.value, day: dayIn.value });
    history.replaceState(null, "", `#/playback?${q}`);
  }

  /** Shows the window of the current zoom around `center`. */
  function setView(center) {
    focus = center;
    const width = Math.min(Number(zoomSel.value), dayEnd - day);
    const start = clamp(center - width / 2, day, dayEnd - width);
    view = [start, start + width];
    draw();
  }

  function draw() {
    const width = view[1] - view[0];
    panL.disabled = view[0] <= day;
    panR.disabled = view[1] >= dayEnd;
    windowLabel.textContent = width < dayEnd - day ? `${clock(view[0])} – ${clock(view[1])}` : "";
    // Axis: about 8 labels, on round steps.
    const steps = [60e3, 5 * 60e3, 15 * 60e3, 30 * 60e3, 3600e3, 3 * 3600e3];
    const step = steps.find((s) => width / s <= 8) || 3 * 3600e3;
    const marks = [];
    const d0 = new Date(day);
    for (let t = day; t <= dayEnd; t += step) {
      // Step in local wall time (daylight-saving days are 23 or 25 hours).
      const m = new Date(d0.getFullYear(), d0.getMonth(), d0.getDate(), 0, 0, 0, t - day).getTime();
      if (m < view[0] || m > view[1]) continue;
      const dm = new Date(m);
      const s = h("span", { text: `${String(dm.getHours()).padStart(2, "0")}:${String(dm.getMinutes()).padStart(2, "0")}` });
      s.style.setProperty("left", pct(m));
      marks.push(s);
    }
    fill(axis, marks);
    for (const r of [...timeline.querySelectorAll(".range")]) r.remove();
    for (const x of ranges) {
      const a = Math.max(x.start, view[0]);
      const b = Math.min(x.end, view[1]);
      if (a >= b) continue;
      const el = h("div", { class: "range", title: `Recorded ${clock(x.start)} – ${clock(x.end)}` });
      el.style.setProperty("left", pct(a));
      el.style.setProperty("width", `${(((b - a) / width) * 100).toFixed(4)}%`);
      timeline.insertBefore(el, playhead);
    }
    movePlayhead();
  }

  async function loadDay() {
    const seq = ++loadSeq;
    const d = dayStart(dayIn.value);
    day = d.getTime();
    dayEnd = nextDay(d).getTime();
    next.disabled = dayEnd > Date.now();
    setHash();
    ranges = [];
    segments = [];
    summary.textContent = "Loading…";
    fill(list);
    const end = Math.min(dayEnd, Date.now());
    if (end <= day) { summary.textContent = "This day has not started yet."; setView(day); return; }
    let r;
    try {
      r = await api("GET", withQuery(`/api/cameras/${seg(camSel.value)}/recordings`, { start: iso(day), end: iso(end) }));
    } catch (e) {
      if (seq === loadSeq && !gone) summary.textContent = `Could not load recordings: ${e.message}`;
      return;
    }
    if (seq !== loadSeq || gone) return;
    ranges = r.ranges.map((x) => ({ start: Date.parse(x.start), end: Date.parse(x.end) }));
    segments = r.segments.map((s) => ({ start: Date.parse(s.start), end: Date.parse(s.end), codec: s.codec }));
    const rec = ranges.reduce((n, x) => n + (x.end - x.start), 0);
    const gaps = Math.max(0, ranges.length - 1);
    summary.textContent = ranges.length
      ? `${duration(rec / 1000)} recorded in ${ranges.length} stretch${ranges.length === 1 ? "" : "es"}, ${gaps} gap${gaps === 1 ? "" : "s"} between them.`
      : "Nothing recorded on this day.";
    // Centre on what is playing, else on the newest recording.
    const centre = playing && playing.camera === camSel.value && playing.start >= day && playing.start < dayEnd
      ? playing.zero + video.currentTime * 1000
      : ranges.length ? ranges[ranges.length - 1].end : day + (dayEnd - day) / 2;
    setView(centre);
    const rows = ranges.slice(-MAX_LIST).reverse().map((x) => h("li", {},
      h("button", { type: "button", class: "quiet", text: `Play ${clock(x.start)} – ${clock(x.end)}`, onclick: () => play(x.start) }),
      ` ${duration((x.end - x.start) / 1000)}`));
    fill(list, ranges.length ? [
      h("h2", { text: "Recorded stretches, newest first" }),
      ranges.length > MAX_LIST ? h("p", { class: "muted", text: `Showing the last ${MAX_LIST} of ${ranges.length}.` }) : null,
      h("ul", { class: "plain" }, rows)] : []);
  }

  function timeAt(clientX) {
    const rect = timeline.getBoundingClientRect();
    const f = clamp((clientX - rect.left) / rect.width, 0, 1);
    return view[0] + f * (view[1] - view[0]);
  }

  /**
   * What to play for a click at `t`: the stretch holding it, else the
   * nearer of the stretch before (its last minute) and the one after.
   */
  function target(t) {
    const inside = ranges.find((x) => t >= x.start && t < x.end);
    if (inside) return { start: t, range: inside };
    const before = [...ranges].reverse().find((x) => x.end <= t);
    const after = ranges.find((x) => x.start > t);
    if (before && (!after || t - before.end < after.start - t)) {
      return { start: Math.max(before.start, before.end - 60e3), range: before };
    }
    return after ? { start: after.start, range: after } : null;
  }

  async function play(t) {
    perr.textContent = "";
    const tg = target(t);
    if (!tg) { player.hidden = false; perr.textContent = "Nothing recorded on this day."; return; }
    if (Math.abs(tg.start - t) > 5000) ctx.notify(`Nothing recorded at ${clock(t)}; playing from ${clock(tg.start)}.`, "info");
    await playRange(camSel.value, tg.start, Math.min(tg.range.end, tg.start + MAX_PIECE_MS));
  }

  function codecAt(t) {
    const s = segments.find((x) => t >= x.start && t < x.end) || segments.find((x) => x.start > t);
    return s ? s.codec : "";
  }

  async function playRange(camera, start, end) {
    const codec = codecAt(start);
    const params = { start: iso(start), end: iso(end) };
    if (isHevc(codec) && !canPlayFile(codec)) params.codec = "h264";
    const url = withQuery(`/api/cameras/${seg(camera)}/video.mp4`, params);
    player.hidden = false;
    perr.textContent = "";
    what.textContent = "Loading…";
    // HEAD first: it says what the file covers and turns refusals (nothing
    // recorded, a parameter change, no transcoder free) into words instead
    // of a silent media error. Only the GET is audited.
    let res;
    try {
      res = await fetch(url, { method: "HEAD", credentials: "same-origin", cache: "no-store" });
    } catch {
      perr.textContent = "The server cannot be reached.";
      return;
    }
    if (gone) return;
    if (!res.ok) {
      let body = null;
      if (res.status !== 401 && res.status !== 503) {
        try { body = await (await fetch(url, { credentials: "same-origin", cache: "no-store" })).json(); } catch { /* none */ }
      }
      if (res.status === 409 && body && body.parts) {
        // The camera changed resolution or codec settings inside the range:
        // play the part holding the start; `ended` moves on to the next.
        const part = body.parts.map((p) => ({ start: Date.parse(p.start), end: Date.parse(p.end) }))
          .find((p) => start >= p.start - 1000 && start < p.end);
        if (part && (part.start !== start || part.end !== end)) return playRange(camera, Math.max(start, part.start), part.end);
      }
      what.textContent = "";
      if (res.status === 401) api("GET", "/api/me").catch(() => {});
      else if (res.status === 503 && params.codec) {
        perr.textContent = "This camera records H.265, which this browser cannot play, and the server cannot convert it just now (busy or not available). Try again shortly, or export the range and play it in VLC.";
      } else perr.textContent = `Cannot play ${clock(start)} – ${clock(end)}: ${(body && body.detail) || res.statusText}`;
      return;
    }
    const hdr = (n) => res.headers.get(n);
    const recStart = Date.parse(hdr("x-recording-start")) || start;
    const recEnd = Date.parse(hdr("x-recording-end")) || end;
    const firstFrame = Date.parse(hdr("x-first-frame")) || recStart;
    const leadIn = Number(hdr("x-lead-in-ms")) || 0;
    playing = { camera, start: recStart, end: recEnd, zero: recStart, url, leadIn, firstFrame, converted: Boolean(params.codec) };
    video.src = url;
    what.textContent = `${camSel.selectedOptions[0]?.textContent || camera}, ${dateTime(recStart)} – ${clock(recEnd)}${params.codec ? " (converted to H.264 on the server)" : ""}`;
    if (canExport) {
      const q = new URLSearchParams({ camera, start: localInput(recStart), end: localInput(recEnd) });
      exportLink.href = `#/export?${q}`;
      exportLink.hidden = false;
    }
    video.play().catch(() => { /* the user can press play */ });
    movePlayhead();
  }

  const localInput = (ms) => {
    const d = new Date(ms);
    const p = (n) => String(n).padStart(2, "0");
    return `${localDate(d)}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  };

  video.addEventListener("loadedmetadata", () => {
    // An ignored edit list shows as a duration that includes the lead-in:
    // then media time 0 is the key frame, and the requested start is later.
    const p = playing;
    if (!p || !p.leadIn || !Number.isFinite(video.duration)) return;
    const withLeadIn = (p.end - p.firstFrame) / 1000;
    const without = (p.end - p.start) / 1000;
    if (Math.abs(video.duration - withLeadIn) < Math.abs(video.duration - without)) {
      p.zero = p.firstFrame;
      video.currentTime = p.leadIn / 1000;
    }
  });

  function movePlayhead() {
    if (!playing || playing.camera !== camSel.value) { playhead.hidden = true; now.textContent = ""; return; }
    const wall = playing.zero + video.currentTime * 1000;
    now.textContent = dateTime(wall);
    playhead.hidden = wall < view[0] || wall > view[1];
    playhead.style.setProperty("left", pct(wall));
  }

  function playAtInput() {
    if (!timeIn.value) { timeIn.focus(); return; }
    const [hh, mm, ss] = timeIn.value.split(":").map(Number);
    const d = new Date(day);
    d.setHours(hh, mm, ss || 0, 0);
    play(d.getTime());
  }

  video.addEventListener("timeupdate", movePlayhead);
  video.addEventListener("ended", () => {
    // Continue where the piece stopped: the same stretch when the piece was
    // capped or split, else the next recorded stretch after the gap.
    if (!playing || playing.camera !== camSel.value) return;
    const at = playing.end;
    const same = ranges.find((x) => at >= x.start && at < x.end - 1000);
    const n = same ? { start: at, end: same.end } : ranges.find((x) => x.start >= at);
    if (n) playRange(playing.camera, n.start, Math.min(n.end, n.start + MAX_PIECE_MS));
  });
  video.addEventListener("error", () => {
    if (!video.getAttribute("src")) return;
    const p = playing;
    if (p && p.converted && (p.retries || 0) < 3) {
      // A converted stream refused with 503 (every converter busy; the HEAD
      // could not tell, it does not take one): try again as Retry-After says.
      perr.textContent = "The server's converters are busy; trying again in 5 s…";
      const retries = (p.retries || 0) + 1;
      setTimeout(() => {
        if (gone || playing !== p) return;
        playRange(p.camera, p.start, p.end).then(() => { if (playing && playing !== p) playing.retries = retries; });
      }, 5000);
      return;
    }
    perr.textContent = `The browser could not play this recording (${video.error ? video.error.message || `error ${video.error.code}` : "media error"}).`;
  });
  timeline.addEventListener("click", (ev) => { if (ranges.length) play(timeAt(ev.clientX)); });
  timeline.addEventListener("mousemove", (ev) => {
    const t = timeAt(ev.clientX);
    hover.hidden = false;
    hover.textContent = clock(t);
    hover.style.setProperty("left", pct(t));
  });
  timeline.addEventListener("mouseleave", () => { hover.hidden = true; });
  zoomSel.addEventListener("change", () => {
    const center = playing && playing.camera === camSel.value ? playing.zero + video.currentTime * 1000 : focus;
    setView(center);
  });
  panL.addEventListener("click", () => setView((view[0] + view[1]) / 2 - (view[1] - view[0]) * 0.75));
  panR.addEventListener("click", () => setView((view[0] + view[1]) / 2 + (view[1] - view[0]) * 0.75));
  const shiftDay = (n) => { dayIn.value = localDate(nextDay(dayStart(dayIn.value), n)); loadDay(); };
  prev.addEventListener("click", () => shiftDay(-1));
  next.addEventListener("click", () => shiftDay(1));
  today.addEventListener("click", () => { dayIn.value = localDate(new Date()); loadDay(); });
  dayIn.addEventListener("change", () => { if (dayIn.value) loadDay(); });
  camSel.addEventListener("change", () => {
    video.removeAttribute("src");
    video.load();
    playing = null;
    player.hidden = true;
    loadDay();
  });

  (async () => {
    try {
      cameras = (await api("GET", "/api/cameras")).cameras;
    } catch (e) {
      summary.textContent = `Could not load cameras: ${e.message}`;
      return;
    }
    if (gone) return;
    if (!cameras.length) { summary.textContent = "No cameras are configured for you."; return; }
    fill(camSel, cameras.map((c) => h("option", { value: c.id, text: c.name })));
    const want = ctx.params.get("camera");
    if (want && cameras.some((c) => c.id === want)) camSel.value = want;
    const d = ctx.params.get("day");
    dayIn.value = d && /^\d{4}-\d\d-\d\d$/.test(d) ? d : localDate(new Date());
    dayIn.max = localDate(new Date());
    loadDay();
  })();

  return () => {
    gone = true;
    video.removeAttribute("src");
    video.load();
  };
}
