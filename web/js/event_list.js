// The camera events list beside playback: the events of the cameras shown
// that touch the timeline's visible range, newest first or in time order,
// filtered by the kind chosen (the same choice as "next / previous event").
// A click plays from a few seconds before the event; the events under the
// playhead are highlighted. Fed by playback's own loads (`/api/events`, the
// same answer that draws the marks), so it follows the range and, while the
// view reaches the present, new events as they are stored. Rows are kept
// across redraws (keyed), so focus and scrolling survive a refresh.

import { h, fill } from "./dom.js";
import { clock, duration, localDate, dateTime } from "./format.js";

/** The kinds of camera events (`/api/events`): value, label, word for counts. */
export const EVENT_KINDS = [
  ["", "Any event", "event"], ["motion", "Motion", "motion event"], ["tamper", "Tampering", "tampering event"],
  ["intrusion", "Line crossing / intrusion", "intrusion event"], ["input", "Digital input", "input event"],
  ["video_loss", "Video loss", "video loss event"], ["other", "Other", "other event"],
];

/** A click plays from this long before the event, ms: the lead-up is part of it. */
export const PRE_ROLL_MS = 3000;
/** An event without duration (a line crossed) counts as under the playhead this long, ms. */
const INSTANT_MS = 2000;
/** Most rows drawn; more means zooming in (all are still counted). */
const MAX_ROWS = 300;

export const kindLabel = (k) => (EVENT_KINDS.find(([v]) => v === k) || EVENT_KINDS[6])[1];

/**
 * `opts`: `{kindSelect: <select>, view: () => [a, b] (ms), cameraName: (id) => name,
 * cameraCount: () => n, play: (event, ms) => void, searchHref: (kind, a, b) => url}`.
 * Returns `{el, controls, setEvents(apiEvents, truncated), refresh(), setPlayhead(ms)}`.
 */
export function eventList(opts) {
  const order = h("select", { id: "pb-evl-order", "aria-label": "Order of the events" },
    h("option", { value: "newest", text: "Newest first" }), h("option", { value: "oldest", text: "In time order" }));
  const count = h("p", { id: "pb-evl-count", class: "muted", role: "status", "aria-live": "polite" });
  const list = h("ol", { id: "pb-evl", class: "plain evl-list", "aria-label": "Camera events in view" });
  const search = h("a", { id: "pb-evl-search", href: "#/events", text: "Search events on all cameras…" });
  const controls = h("div", { class: "buttons evl-controls" }, order);
  const el = h("div", { class: "evl" }, count, list, h("p", { class: "evl-foot" }, search));

  /** Every event loaded: {key, camera, kind, topic, start, end (ms, or null), active, instant, until}. */
  let all = [];
  let byKey = new Map();
  let truncated = false;
  /** key -> <li> of rows drawn, reused across redraws. */
  const rows = new Map();
  let drawn = "";
  let current = "";

  function setEvents(apiEvents, more) {
    truncated = !!more;
    const now = Date.now();
    all = apiEvents.map((e) => {
      const start = Date.parse(e.start);
      const end = e.end ? Date.parse(e.end) : null;
      // A line crossed has no duration: stored ending where it starts (or not at all).
      const instant = end === null ? !e.active : end <= start;
      return {
        key: `${e.camera}|${e.start}|${e.kind}|${e.topic}`, camera: e.camera, kind: e.kind, topic: e.topic,
        start, end, active: !!e.active, instant,
        // For overlap and highlighting: still on reaches now; an instant, a moment.
        until: instant ? start + INSTANT_MS : end ?? now,
      };
    });
    byKey = new Map(all.map((e) => [e.key, e]));
    refresh();
  }

  function shown() {
    const [a, b] = opts.view();
    const kind = opts.kindSelect.value;
    const out = all.filter((e) => (!kind || e.kind === kind) && e.start < b && e.until >= a);
    out.sort((x, y) => (order.value === "oldest" ? x.start - y.start : y.start - x.start) || x.camera.localeCompare(y.camera));
    return out;
  }

  /** Draws the rows for the view, kind and order now; touches the page only when they changed. */
  function refresh() {
    const evs = shown();
    const [a, b] = opts.view();
    const kind = opts.kindSelect.value;
    const kindWords = kind ? ` (${kindLabel(kind).toLowerCase()})` : "";
    const n = evs.length;
    count.textContent = n
      ? `${n > MAX_ROWS ? `${MAX_ROWS} of ` : ""}${n}${truncated ? "+" : ""} event${n === 1 ? "" : "s"} in view${kindWords}${n > MAX_ROWS || truncated ? ": zoom in to see them all" : ""}.`
      : `No camera events in view${kindWords}.`;
    const q = new URLSearchParams({ start: new Date(a).toISOString(), end: new Date(Math.min(b, Date.now())).toISOString() });
    if (kind) q.set("kind", kind);
    search.href = `#/events?${q}`;
    const draw = evs.slice(0, MAX_ROWS);
    const days = new Set(draw.map((e) => localDate(new Date(e.start))));
    const several = opts.cameraCount() > 1;
    const sig = `${days.size > 1}|${several}|${draw.map((e) => `${e.key}:${e.end}:${e.active}`).join(",")}`;
    if (sig === drawn) return;
    drawn = sig;
    const keep = new Set();
    const items = [];
    let lastDay = "";
    for (const e of draw) {
      const day = localDate(new Date(e.start));
      if (days.size > 1 && day !== lastDay) items.push(h("li", { class: "evl-day", text: day }));
      lastDay = day;
      keep.add(e.key);
      let li = rows.get(e.key);
      const ver = `${e.end}:${e.active}:${several}`;
      if (!li || li.dataset.ver !== ver) {
        const fresh = row(e, several);
        fresh.dataset.ver = ver;
        if (li) li.replaceWith(fresh);
        li = fresh;
        rows.set(e.key, li);
      }
      items.push(li);
    }
    for (const k of [...rows.keys()]) if (!keep.has(k)) rows.delete(k);
    // Only moved when the order changed: moving a focused row would drop its focus.
    const same = items.length === list.children.length && items.every((x, i) => list.children[i] === x);
    if (!same) fill(list, items);
    current = "";
  }

  function row(e, several) {
    const label = kindLabel(e.kind);
    const when = !e.instant && e.end !== null
      ? [h("time", { class: "evl-start", datetime: new Date(e.start).toISOString(), text: clock(e.start) }), " – ",
        h("time", { class: "evl-end", datetime: new Date(e.end).toISOString(), text: clock(e.end) }),
        h("span", { class: "evl-dur muted", text: ` (${duration(Math.max(0, e.end - e.start) / 1000)})` })]
      : [h("time", { class: "evl-start", datetime: new Date(e.start).toISOString(), text: clock(e.start) }),
        h("span", { class: "evl-dur muted", text: e.active ? " – still on" : " (a moment)" })];
    const btn = h("button", {
      type: "button", class: "evl-go",
      title: `${label} at ${dateTime(e.start)}: play from ${PRE_ROLL_MS / 1000} s before${e.topic ? `\n${e.topic}` : ""}`,
      onclick: () => opts.play(e, e.start - PRE_ROLL_MS),
    },
    h("span", { class: "evl-kind" }, h("i", { class: `swatch ev-${e.kind}`, "aria-hidden": "true" }), label),
    several ? h("span", { class: "evl-cam", text: opts.cameraName(e.camera) }) : null,
    h("span", { class: "evl-when" }, when),
    e.kind === "other" ? h("code", { class: "evl-topic", text: e.topic }) : null);
    return h("li", {
      class: "evl-item",
      dataset: { key: e.key, camera: e.camera, kind: e.kind, start: String(e.start), end: e.end === null ? "" : String(e.end), topic: e.topic },
    }, btn);
  }

  /** Highlights the rows of the events under the playhead `t` (ms); keeps the first in sight. */
  function setPlayhead(t) {
    const under = [];
    for (const li of list.children) {
      if (!li.dataset.key) continue;
      const e = byKey.get(li.dataset.key);
      if (e && t >= e.start && t <= e.until) under.push(li);
    }
    const sig = under.map((li) => li.dataset.key).join(",");
    if (sig === current) return;
    current = sig;
    for (const li of list.children) {
      const on = under.includes(li);
      li.classList.toggle("current", on);
      if (on) li.setAttribute("aria-current", "true"); else li.removeAttribute("aria-current");
    }
    // Scrolled within the list only (never the page), and not while someone is using it.
    const first = under[0];
    if (first && !list.matches(":hover") && !list.contains(document.activeElement) && list.scrollHeight > list.clientHeight) {
      const top = first.offsetTop - list.offsetTop;
      if (top < list.scrollTop || top + first.offsetHeight > list.scrollTop + list.clientHeight) list.scrollTop = Math.max(0, top - list.clientHeight / 3);
    }
  }

  order.addEventListener("change", refresh);
  opts.kindSelect.addEventListener("change", refresh);
  return { el, controls, setEvents, refresh, setPlayhead };
}
