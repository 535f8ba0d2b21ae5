// Playback: pick a camera and a day; a timeline shows what was recorded and
// the gaps; clicking plays video.mp4 from that moment to the end of that
// recorded stretch, then continues with the next one.
//
// Times: the day is the browser's local day; the API gets UTC. The MP4's
// time 0 is the start of the requested range (the server's edit list), so
// the wall time of the picture is that start plus currentTime.

import { api, seg, withQuery } from "./api.js";
import { h, fill, field } from "./dom.js";
import { clock, dateTime, dayStart, duration, isHevc, localDate, nextDay, zone } from "./format.js";

/** Longest piece requested at once (the server allows a day). */
const MAX_PIECE_MS = 6 * 3600 * 1000;
/** Most ranges listed under the timeline. */
const MAX_LIST = 200;

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
  const summary = h("p", { id: "pb-summary", class: "muted", role: "status", "aria-live": "polite" });
  const timeline = h("div", { class: "timeline", id: "pb-timeline", role: "group", "aria-label": "Recordings on this day; use the list below or the time field with a keyboard" });
  const playhead = h("div", { class: "playhead", hidden: true });
  const hover = h("div", { class: "hover-time", hidden: true });
  const axis = h("div", { class: "axis", "aria-hidden": "true" });
  const video = h("video", { id: "pb-video", controls: true, playsInline: true, preload: "auto", "aria-label": "Recorded video" });
  const now = h("span", { id: "pb-now", class: "now", "aria-live": "off" });
  const what = h("span", { id: "pb-what", class: "muted" });
  const perr = h("p", { class: "error", role: "alert", id: "pb-error" });
  const player = h("section", { class: "player", hidden: true, "aria-label": "Player" }, video, h("div", { class: "caption" }, now, what), perr);
  const list = h("div", { class: "ranges-list" });

  fill(root,
    h("div", { class: "view-head" }, h("h1", { text: "Playback" })),
    h("form", { class: "controls", onsubmit: (ev) => { ev.preventDefault(); playAtInput(); } },
      field("Camera", camSel),
      field(`Day (${zone})`, dayIn),
      h("div", { class: "buttons" }, prev, next, today),
      field("Time", timeIn),
      h("div", { class: "buttons" }, goBtn)),
    h("section", { class: "timeline-wrap", "aria-label": "Timeline" },
      summary, axis, timeline,
      h("div", { class: "legend", "aria-hidden": "true" },
        h("span", {}, h("i", { class: "rec" }), "Recorded"), h("span", {}, h("i", { class: "gap" }), "Nothing recorded"))),
    player, list);
  fill(timeline, playhead, hover);

  let cameras = [];
  let day = null; // Date, local midnight
  let dayEnd = null;
  let ranges = []; // [{start: ms, end: ms}]
  let segments = [];
  let playing = null; // {camera, start, end}
  let loadSeq = 0;
  let gone = false;

  const pct = (t) => `${(((t - day) / (dayEnd - day)) * 100).toFixed(4)}%`;
  const iso = (ms) => new Date(ms).toISOString();

  function setHash() {
    const q = new URLSearchParams({ camera: camSel.value, day: dayIn.value });
    history.replaceState(null, "", `#/playback?${q}`);
  }

  function drawAxis() {
    const marks = [];
    const d = new Date(day);
    for (let hr = 0; hr <= 24; hr += 3) {
      const t = new Date(d.getFullYear(), d.getMonth(), d.getDate(), hr).getTime();
      if (t > dayEnd) break;
      const s = h("span", { text: `${String(hr).padStart(2, "0")}:00` });
      s.style.setProperty("left", pct(t));
      marks.push(s);
    }
    fill(axis, marks);
  }

  async function loadDay() {
    const seq = ++loadSeq;
    const d = dayStart(dayIn.value);
    day = d.getTime();
    dayEnd = nextDay(d).getTime();
    next.disabled = dayEnd > Date.now();
    setHash();
    drawAxis();
    for (const r of [...timeline.querySelectorAll(".range")]) r.remove();
    summary.textContent = "Loading…";
    fill(list);
    const end = Math.min(dayEnd, Date.now());
    if (end <= day) { summary.textContent = "This day has not started yet."; return; }
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
    const gaps = r.gaps.filter((g) => Date.parse(g.end) - Date.parse(g.start) > 1000).length;
    summary.textContent = ranges.length
      ? `${duration(rec / 1000)} recorded in ${ranges.length} stretch${ranges.length === 1 ? "" : "es"}, ${gaps} gap${gaps === 1 ? "" : "s"}. Click the bar to play.`
      : "Nothing recorded on this day.";
    for (const x of ranges) {
      const b = h("button", {
        type: "button", class: "range", tabindex: "-1",
        "aria-label": `Recorded ${clock(x.start)} to ${clock(x.end)}`,
        title: `${clock(x.start)} – ${clock(x.end)}`,
      });
      b.style.setProperty("left", pct(x.start));
      b.style.setProperty("width", `${(((x.end - x.start) / (dayEnd - day)) * 100).toFixed(4)}%`);
      timeline.insertBefore(b, playhead);
    }
    const rows = ranges.slice(-MAX_LIST).reverse().map((x) => h("li", {},
      h("button", { type: "button", class: "quiet", text: `Play ${clock(x.start)} – ${clock(x.end)}`, onclick: () => play(x.start) }),
      ` ${duration((x.end - x.start) / 1000)}`));
    fill(list, ranges.length ? [
      h("h2", { text: "Recorded stretches, newest first" }),
      ranges.length > MAX_LIST ? h("p", { class: "muted", text: `Showing the last ${MAX_LIST} of ${ranges.length}.` }) : null,
      h("ul", { class: "plain" }, rows)] : []);
    movePlayhead();
  }

  function timeAt(clientX) {
    const rect = timeline.getBoundingClientRect();
    const f = Math.min(1, Math.max(0, (clientX - rect.left) / rect.width));
    return day + f * (dayEnd - day);
  }

  /** The range holding `t`, else the next one after it. */
  function rangeFor(t) {
    return ranges.find((x) => t >= x.start && t < x.end) || ranges.find((x) => x.start > t) || null;
  }

  function codecAt(t) {
    const s = segments.find((x) => t >= x.start && t < x.end) || segments.find((x) => x.start > t);
    return s ? s.codec : "";
  }

  async function play(t) {
    perr.textContent = "";
    const r = rangeFor(t);
    if (!r) { perr.textContent = `Nothing recorded after ${clock(t)} on this day.`; player.hidden = false; return; }
    const start = Math.max(t, r.start);
    const end = Math.min(r.end, start + MAX_PIECE_MS);
    if (start > t + 1000) ctx.notify(`Nothing recorded at ${clock(t)}; playing from ${clock(start)}.`, "info");
    await playRange(camSel.value, start, end);
  }

  async function playRange(camera, start, end) {
    const codec = codecAt(start);
    const params = { start: iso(start), end: iso(end) };
    if (isHevc(codec) && !canPlayFile(codec)) params.codec = "h264";
    const url = withQuery(`/api/cameras/${seg(camera)}/video.mp4`, params);
    player.hidden = false;
    what.textContent = "Loading…";
    // HEAD first: it says what the file covers and surfaces refusals
    // (nothing recorded, a parameter change, no transcoder) as text
    // instead of a silent media error. HEAD is not audited; the GET is.
    let res;
    try {
      res = await fetch(url, { method: "HEAD", credentials: "same-origin" });
    } catch {
      perr.textContent = "The server cannot be reached.";
      return;
    }
    if (!res.ok) {
      let body = null;
      try { body = await (await fetch(url, { credentials: "same-origin" })).json(); } catch { /* none */ }
      if (res.status === 409 && body && body.parts) {
        // The camera changed resolution or codec settings inside the
        // range: play the part holding the start, the rest comes next.
        const part = body.parts.map((p) => ({ start: Date.parse(p.start), end: Date.parse(p.end) }))
          .find((p) => start >= p.start && start < p.end);
        if (part && (part.start !== start || part.end !== end)) return playRange(camera, part.start, part.end);
      }
      if (res.status === 503 && params.codec) {
        perr.textContent = "This camera records H.265, which this browser cannot play, and the server cannot convert it yet. Export the range and play it in VLC, or use a browser with H.265 support.";
      } else if (res.status === 401) {
        api("GET", "/api/me").catch(() => {});
      } else {
        perr.textContent = `Cannot play ${clock(start)}–${clock(end)}: ${(body && body.detail) || res.statusText}`;
      }
      what.textContent = "";
      return;
    }
    const recStart = Date.parse(res.headers.get("x-recording-start")) || start;
    const recEnd = Date.parse(res.headers.get("x-recording-end")) || end;
    playing = { camera, start: recStart, end: recEnd, url };
    video.src = url;
    what.textContent = `${camSel.selectedOptions[0]?.textContent || camera}, ${dateTime(recStart)} – ${clock(recEnd)}${params.codec ? " (converted to H.264)" : ""}`;
    video.play().catch(() => { /* the user can press play */ });
    movePlayhead();
  }

  function movePlayhead() {
    if (!playing || playing.camera !== camSel.value) { playhead.hidden = true; now.textContent = ""; return; }
    const wall = playing.start + video.currentTime * 1000;
    now.textContent = dateTime(wall);
    playhead.hidden = wall < day || wall >= dayEnd;
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
    // capped, else the next recorded stretch after the gap.
    if (!playing || playing.camera !== camSel.value) return;
    const at = playing.end;
    const same = ranges.find((x) => at >= x.start && at < x.end - 1000);
    const n = same ? { start: at, end: same.end } : ranges.find((x) => x.start >= at);
    if (n) playRange(playing.camera, n.start, Math.min(n.end, n.start + MAX_PIECE_MS));
  });
  video.addEventListener("error", () => {
    if (!video.getAttribute("src")) return;
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
