// The playback timeline: one lane per camera shown (recorded stretches,
// gaps, the part still being recorded), one playhead, in/out marks, an axis
// in local time. Wheel (or a trackpad or two-finger pinch) zooms around the
// pointer from weeks down to seconds; dragging scrubs; a click plays from
// there. The playhead stays in view while it moves unless the user has
// looked elsewhere, and then "Back to playhead" brings it back.
//
// It only draws and reports: `onSeek(t, {final, click})` and `onView()` are
// the page's to act on.

import { seg } from "./api.js";
import { h, fill } from "./dom.js";
import { clock, dateTime, dayStart, localDate, nextDay, wall } from "./format.js";

const MIN_WIDTH = 10e3;
const MAX_WIDTH = 31 * 86400e3;
/** Axis steps, ms; the first that gives few enough labels is used. */
const STEPS = [1e3, 5e3, 10e3, 30e3, 60e3, 5 * 60e3, 15 * 60e3, 30 * 60e3, 3600e3, 3 * 3600e3, 6 * 3600e3, 12 * 3600e3, 86400e3, 7 * 86400e3];
const clamp = (v, a, b) => Math.min(b, Math.max(a, v));

/** Makes `kids` the children of `el`, touching the DOM only when they differ. */
function reorder(el, kids) {
  const now = el.children;
  if (now.length === kids.length && kids.every((k, i) => now[i] === k)) return;
  el.replaceChildren(...kids);
}

export class Timeline {
  constructor({ onSeek, onView }) {
    this.onSeek = onSeek;
    this.onView = onView || (() => {});
    this.view = [Date.now() - 3600e3, Date.now()];
    this.lanes = [];
    this.playhead = null;
    this.marks = { in: null, out: null };
    this.follow = true;
    this.axis = h("div", { class: "axis", "aria-hidden": "true" });
    this.lanesEl = h("div", { class: "lanes" });
    this.head = h("div", { class: "playhead", hidden: true });
    this.hoverText = h("span", { class: "hover-text" });
    // The picture at the moment under the pointer (the server's key frame there).
    this.thumb = h("img", { class: "thumb", alt: "", width: 160, hidden: true });
    this.thumb.addEventListener("load", () => { this.thumb.hidden = false; });
    this.thumb.addEventListener("error", () => { this.thumb.hidden = true; });
    this.thumbTimer = null;
    this.hover = h("div", { class: "hover-time", hidden: true }, this.thumb, this.hoverText);
    this.nowLine = h("div", { class: "now-line", title: "Now" });
    this.markSpan = h("div", { class: "mark-span", hidden: true });
    this.el = h("div", {
      class: "timeline", id: "pb-timeline", role: "group",
      "aria-label": "Timeline of recordings: wheel to zoom, drag to scrub; with a keyboard use the time field and the keys listed under Shortcuts",
    }, this.lanesEl, this.markSpan, this.nowLine, this.head, this.hover);
    this.back = h("button", { type: "button", class: "quiet", id: "pb-back", hidden: true, text: "Back to playhead ⤓" });
    this.back.addEventListener("click", () => this.toPlayhead());
    this.pointers = new Map();
    this.drag = null;
    this.bind();
  }

  width() { return this.view[1] - this.view[0]; }

  timeAt(clientX) {
    const r = this.el.getBoundingClientRect();
    return this.view[0] + clamp((clientX - r.left) / r.width, 0, 1) * this.width();
  }

  pct(t) { return `${(((t - this.view[0]) / this.width()) * 100).toFixed(4)}%`; }

  /** Sets the visible window; `user` when the person moved it (then following stops if the playhead left the view). */
  setView(a, b, user = false) {
    let w = clamp(b - a, MIN_WIDTH, MAX_WIDTH);
    if (b - a !== w) a = (a + b) / 2 - w / 2;
    // Never more than a little of the future.
    const limit = Date.now() + w * 0.1;
    if (a + w > limit) a = limit - w;
    this.view = [a, a + w];
    if (user) this.follow = this.playhead !== null && this.inView(this.playhead);
    this.el.dataset.viewStart = String(Math.round(a));
    this.el.dataset.viewEnd = String(Math.round(a + w));
    this.draw();
    this.onView(this.view);
  }

  /** Centres the window of width `w` on `t`. */
  centre(t, w = this.width()) { this.setView(t - w / 2, t + w / 2); }

  inView(t) { return t >= this.view[0] && t <= this.view[1]; }

  toPlayhead() {
    this.follow = true;
    if (this.playhead !== null) this.centre(this.playhead);
  }

  /**
   * lanes: [{id, name, ranges: [{start, end}], offline: [{start, end, state, reason}],
   * archived: [{start, end}] (archive-only parts),
   * bookmarks: [{id, t, name, note, created_by}], holds: [{id, start, end, reason, by}], events: [{start, end, kind, topic}], recordingSince: ms|null}]
   */
  setLanes(lanes) {
    this.lanes = lanes;
    this.draw();
  }

  setMarks(i, o) {
    this.marks = { in: i, out: o };
    this.drawMarks();
  }

  /** Moves the playhead; following keeps it in view. */
  setPlayhead(t) {
    this.playhead = t;
    const w = this.width();
    if (this.follow && t !== null && (t < this.view[0] || t > this.view[1] - w * 0.02)) {
      // Moving on: put it near the left so most of the window is ahead.
      const a = t > this.view[1] - w * 0.02 && t < this.view[1] + w * 0.5 ? t - w * 0.1 : t - w / 2;
      this.setView(a, a + w);
      return;
    }
    this.drawHead();
  }

  drawHead() {
    const t = this.playhead;
    const shown = t !== null && this.inView(t);
    this.head.hidden = !shown;
    if (shown) this.head.style.setProperty("left", this.pct(t));
    this.back.hidden = t === null || shown;
    this.nowLine.hidden = !this.inView(Date.now());
    if (!this.nowLine.hidden) this.nowLine.style.setProperty("left", this.pct(Date.now()));
  }

  drawMarks() {
    const { in: i, out: o } = this.marks;
    const a = i ?? o;
    const b = o ?? i;
    this.markSpan.hidden = a === null || a === undefined;
    if (this.markSpan.hidden) return;
    const x = Math.max(a, this.view[0]);
    const y = Math.min(Math.max(a, b), this.view[1]);
    this.markSpan.hidden = y < x;
    this.markSpan.classList.toggle("point", a === b);
    this.markSpan.style.setProperty("left", this.pct(x));
    this.markSpan.style.setProperty("width", `${(((y - x) / this.width()) * 100).toFixed(4)}%`);
  }

  draw() {
    const [a, b] = this.view;
    const w = b - a;
    const px = this.el.clientWidth || 800;
    const most = Math.max(3, Math.floor(px / 90));
    const step = STEPS.find((s) => w / s <= most) || STEPS[STEPS.length - 1];
    const marks = [];
    const d0 = new Date(a);
    const midnight = dayStart(localDate(d0)).getTime();
    const first = step >= 86400e3 ? midnight : midnight + Math.ceil((a - midnight) / step) * step;
    for (let m = first, n = 0; m <= b && n < 100; n++) {
      if (m >= a) {
        const d = new Date(m);
        const w0 = wall(d);
        const atMidnight = w0.hh === 0 && w0.mi === 0 && w0.ss === 0;
        const text = step >= 86400e3 || (atMidnight && w > 3600e3) ? localDate(d).slice(5)
          : step < 60e3 ? clock(d) : clock(d).slice(0, 5);
        const s = h("span", { text });
        s.style.setProperty("left", this.pct(m));
        marks.push(s);
      }
      // Steps of a day follow the zone's midnights (days of 23 or 25 hours).
      m = step >= 86400e3 ? nextDay(new Date(m), step / 86400e3).getTime() : m + step;
    }
    fill(this.axis, marks);
    const several = this.lanes.length > 1;
    this.el.classList.toggle("several", several);
    this.el.style.setProperty("--lanes", String(Math.max(1, this.lanes.length)));
    // Lanes and their marks keep their elements from one draw to the next
    // (keyed by camera and by what each mark is), so the refresh every few
    // seconds moves them instead of replacing them: a mark under the pointer,
    // a flag being clicked or a script holding one still has a live element.
    const oldLanes = new Map([...this.lanesEl.children].map((el) => [el.dataset.camera, el]));
    reorder(this.lanesEl, this.lanes.map((l) => {
      const lane = oldLanes.get(l.id) || h("div", { class: "lane", dataset: { camera: l.id } });
      lane.title = l.name;
      const old = new Map([...lane.children].map((el) => [el.dataset.key, el]));
      const kids = [];
      /** The element for `key` (kept, or made by `make`), given `attrs` and placed at [s, e] (a point when e is undefined). */
      const put = (key, make, attrs, s, e) => {
        const el = old.get(key) || make();
        el.dataset.key = key;
        for (const [k, v] of Object.entries(attrs)) {
          if (k === "dataset") Object.assign(el.dataset, v);
          else if (el.getAttribute(k) !== v) el.setAttribute(k, v);
        }
        el.style.setProperty("left", this.pct(s));
        if (e !== undefined) el.style.setProperty("width", `${(((e - s) / w) * 100).toFixed(4)}%`);
        kids.push(el);
      };
      for (const x of l.ranges) {
        const s = Math.max(x.start, a);
        const e = Math.min(x.end, b);
        if (s >= e) continue;
        put(`r${x.start}`, () => h("div", { class: "range" }),
          { title: `${l.name}: recorded ${dateTime(x.start)} – ${clock(x.end)}`, dataset: { start: String(x.start), end: String(x.end) } }, s, e);
      }
      for (const x of l.archived || []) {
        // Only in the archive tier: plays the same, read over the network.
        const s = Math.max(x.start, a);
        const e = Math.min(x.end, b);
        if (s >= e) continue;
        put(`a${x.start}`, () => h("div", { class: "archived" }),
          { title: `${l.name}: archive only ${dateTime(x.start)} – ${clock(x.end)} (read from the archive)`, dataset: { start: String(x.start), end: String(x.end) } }, s, e);
      }
      if (l.recordingSince !== null && l.recordingSince !== undefined) {
        // Being recorded: on disk, playable once its segment closes.
        const s = Math.max(l.recordingSince, a);
        const e = Math.min(Date.now(), b);
        if (s < e) put("live", () => h("div", { class: "rec-live" }), { title: `${l.name}: recording now (playable within a minute)` }, s, e);
      }
      for (const x of l.offline || []) {
        // The camera down or not recorded (from the server's state history): not the
        // same as a gap, where the camera may simply have had nothing to record.
        const s = Math.max(x.start, a);
        const e = Math.min(x.end, b);
        if (s >= e) continue;
        const what = x.state === "not_recording" ? "not recording" : x.state;
        put(`o${x.start}${x.state}`, () => h("div", { class: `offline st-${x.state}` }),
          { title: `${l.name}: ${what} ${dateTime(x.start)} – ${clock(x.end)}${x.reason ? ` (${x.reason})` : ""}`, dataset: { state: x.state, start: String(x.start), end: String(x.end) } }, s, e);
      }
      for (const x of l.holds || []) {
        // A legal hold: retention keeps this footage until the hold is released.
        const s = Math.max(x.start, a);
        const e = Math.min(x.end, b);
        if (s >= e) continue;
        put(`h${x.id}`, () => h("div", { class: "held" }),
          { title: `${l.name}: on legal hold ${dateTime(x.start)} – ${clock(x.end)} (${x.reason}; ${x.by})`, dataset: { id: x.id, start: String(x.start), end: String(x.end) } }, s, e);
      }
      for (const x of l.bookmarks || []) {
        if (x.t < a || x.t > b) continue;
        put(`b${x.id}`, () => h("div", { class: "bookmark" }),
          { title: `${l.name}: ${x.name} (${dateTime(x.t)}, ${x.created_by})${x.note ? ` — ${x.note}` : ""}`, dataset: { t: String(x.t), id: x.id } }, x.t);
      }
      for (const x of l.events || []) {
        // The camera's own events (motion, tamper...): a tick, or a bar for as long as it lasted.
        if (x.end < a || x.start > b) continue;
        const s = Math.max(x.start, a);
        const e = Math.min(Math.max(x.end, x.start), b);
        put(`e${x.kind}${x.start}`, () => h("div", { class: `event ev-${x.kind}` }),
          { title: `${l.name}: ${x.kind.replace("_", " ")} ${dateTime(x.start)}${x.end > x.start ? ` – ${clock(x.end)}` : ""}${x.reason ? ` (end not seen: ${x.reason.replaceAll("_", " ")})` : ""} (${x.topic})`, dataset: { kind: x.kind, start: String(x.start) } }, s, e);
      }
      if (several) {
        const n = old.get("name") || h("span", { class: "lane-name", dataset: { key: "name" } });
        if (n.textContent !== l.name) n.textContent = l.name;
        kids.push(n);
      }
      reorder(lane, kids);
      return lane;
    }));
    this.drawMarks();
    this.drawHead();
  }

  bind() {
    const el = this.el;
    el.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      const scale = ev.deltaMode === 1 ? 40 : ev.deltaMode === 2 ? 800 : 1;
      const dx = ev.deltaX * scale;
      const dy = ev.deltaY * scale;
      const w = this.width();
      if (ev.shiftKey || Math.abs(dx) > Math.abs(dy)) {
        const px = el.clientWidth || 1;
        const shift = ((dx || dy) / px) * w;
        this.setView(this.view[0] + shift, this.view[1] + shift, true);
        return;
      }
      this.zoomAt(this.timeAt(ev.clientX), Math.exp(dy * 0.002));
    }, { passive: false });
    el.addEventListener("pointerdown", (ev) => {
      if (ev.button !== 0) return;
      this.pointers.set(ev.pointerId, ev.clientX);
      el.setPointerCapture(ev.pointerId);
      if (this.pointers.size === 2) {
        // Two fingers: pinch zoom, no scrub.
        const [x1, x2] = [...this.pointers.values()];
        this.drag = { pinch: Math.abs(x2 - x1) || 1 };
        return;
      }
      // A click on a bookmark's flag goes to the bookmark itself, not a pixel near it.
      const flag = ev.target.closest && ev.target.closest(".bookmark");
      this.drag = { x0: ev.clientX, moved: false, snap: flag ? Number(flag.dataset.t) : null };
    });
    el.addEventListener("pointermove", (ev) => {
      if (this.drag === null || !this.pointers.has(ev.pointerId)) {
        if (ev.pointerType === "mouse") this.showHover(ev.clientX, ev.clientY);
        return;
      }
      this.pointers.set(ev.pointerId, ev.clientX);
      if (this.drag.pinch) {
        const [x1, x2] = [...this.pointers.values()];
        const d = Math.abs(x2 - x1) || 1;
        this.zoomAt(this.timeAt((x1 + x2) / 2), this.drag.pinch / d);
        this.drag.pinch = d;
        return;
      }
      if (!this.drag.moved && Math.abs(ev.clientX - this.drag.x0) < 4) return;
      this.drag.moved = true;
      const t = this.timeAt(ev.clientX);
      this.showHover(ev.clientX, ev.clientY);
      this.follow = true;
      this.onSeek(t, { final: false, click: false });
    });
    const up = (ev) => {
      if (!this.pointers.has(ev.pointerId)) return;
      this.pointers.delete(ev.pointerId);
      const d = this.drag;
      if (this.pointers.size === 0) this.drag = null;
      if (!d || d.pinch || ev.type === "pointercancel") return;
      this.follow = true;
      const t = !d.moved && d.snap !== null ? d.snap : this.timeAt(ev.clientX);
      this.onSeek(t, { final: true, click: !d.moved });
    };
    el.addEventListener("pointerup", up);
    el.addEventListener("pointercancel", up);
    el.addEventListener("pointerleave", () => {
      clearTimeout(this.thumbTimer);
      if (this.drag === null) this.hover.hidden = true;
    });
  }

  zoomAt(t, factor) {
    const w = this.width();
    const nw = clamp(w * factor, MIN_WIDTH, MAX_WIDTH);
    const a = t - (t - this.view[0]) * (nw / w);
    this.setView(a, a + nw, true);
  }

  showHover(clientX, clientY) {
    const t = this.timeAt(clientX);
    this.hover.hidden = false;
    this.hoverText.textContent = this.width() > 86400e3 ? dateTime(t).slice(5, 16) : clock(t);
    this.hover.style.setProperty("left", this.pct(t));
    this.previewAt(t, clientY);
  }

  /**
   * A thumbnail of the recorded moment under the pointer, for the lane it is
   * over (the first lane otherwise), once the pointer rests ~150 ms: moving
   * across the timeline asks for only the moments it stops at.
   */
  previewAt(t, clientY) {
    clearTimeout(this.thumbTimer);
    let lane = this.lanes[0];
    if (clientY !== undefined && this.lanes.length > 1) {
      const rows = [...this.lanesEl.children];
      const i = rows.findIndex((r) => { const b = r.getBoundingClientRect(); return clientY >= b.top && clientY <= b.bottom; });
      if (i >= 0) lane = this.lanes[i];
    }
    const recorded = lane && lane.ranges.some((x) => t >= x.start && t < x.end);
    if (!recorded) { this.thumb.hidden = true; this.thumb.removeAttribute("src"); return; }
    this.thumbTimer = setTimeout(() => {
      // Rounded to the second: a pointer resting within one second asks once.
      const at = new Date(Math.floor(t / 1000) * 1000).toISOString();
      const src = `/api/cameras/${seg(lane.id)}/thumbnail?t=${encodeURIComponent(at)}`;
      if (this.thumb.getAttribute("src") !== src) this.thumb.src = src;
      this.thumb.dataset.camera = lane.id;
    }, 150);
  }
}
