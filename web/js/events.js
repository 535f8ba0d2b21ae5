// Event search: the cameras' own events (motion, tampering, line crossing...)
// across the cameras the user may see, by kind and time
// (`GET /api/events?start=&end=&kind=&cameras=`), newest first, each with a
// link that plays it. Reached from the events list beside playback, which
// passes its kind and visible range (`#/events?kind=&start=&end=&cameras=`).

import { api, withQuery } from "./api.js";
import { h, fill, field, table } from "./dom.js";
import { EVENT_KINDS, PRE_ROLL_MS, kindLabel } from "./event_list.js";
import { clock, dateTime, duration, fromInput, localDate, localDateTimeInput, zone } from "./format.js";

/** The longest range the server answers, ms (31 days). */
const MAX_RANGE_MS = 31 * 86400e3;

export function mount(root, ctx) {
  const p = ctx.params;
  const kind = h("select", { id: "evs-kind", name: "kind" }, EVENT_KINDS.map(([v, t]) => h("option", { value: v, text: t })));
  const from = h("input", { type: "datetime-local", id: "evs-from", name: "from", step: 1, required: true });
  const to = h("input", { type: "datetime-local", id: "evs-to", name: "to", step: 1, required: true });
  const cams = h("fieldset", { class: "cams", id: "evs-cameras" }, h("legend", { class: "label", text: "Cameras (none ticked: all yours)" }));
  const err = h("p", { class: "error", role: "alert" });
  const results = h("div", { id: "evs-results", "aria-live": "polite" });
  const form = h("form", { class: "panel controls ev-search", id: "evs-form" },
    field("Kind", kind), field(`From (${zone})`, from), field(`To (${zone})`, to), cams,
    h("div", { class: "buttons" }, h("button", { type: "submit", class: "primary", text: "Search" })));
  fill(root,
    h("div", { class: "view-head" }, h("h1", { text: "Camera events" })),
    h("p", { class: "muted" }, "What the cameras themselves reported (motion, tampering, line crossing, inputs, video loss), across your cameras. ",
      "Beside the picture in ", h("a", { href: "#/playback", text: "Playback" }), " the same events list with the timeline."),
    form, err, results);

  let gone = false;
  let names = new Map();
  const t = (s) => (s && !Number.isNaN(Date.parse(s)) ? Date.parse(s) : NaN);
  const end = Number.isFinite(t(p.get("end"))) ? t(p.get("end")) : Date.now();
  const start = Number.isFinite(t(p.get("start"))) ? t(p.get("start")) : end - 86400e3;
  from.value = localDateTimeInput(new Date(start));
  // The field holds whole seconds: round the end up so that an event in its
  // last, partial second is still found.
  to.value = localDateTimeInput(new Date(Math.ceil(end / 1000) * 1000));
  if (EVENT_KINDS.some(([v]) => v === p.get("kind"))) kind.value = p.get("kind");
  const wanted = new Set((p.get("cameras") || "").split(",").filter(Boolean));

  function ticked() { return [...cams.querySelectorAll("input:checked")].map((c) => c.value); }

  async function search() {
    err.textContent = "";
    const a = fromInput(from.value).getTime();
    const b = fromInput(to.value).getTime();
    if (!Number.isFinite(a) || !Number.isFinite(b)) { err.textContent = "Enter both times."; return; }
    if (b <= a) { err.textContent = "The end must be after the start."; to.focus(); return; }
    if (b - a > MAX_RANGE_MS) { err.textContent = "Search at most 31 days at a time."; from.focus(); return; }
    const q = { start: new Date(a).toISOString(), end: new Date(b).toISOString() };
    if (kind.value) q.kind = kind.value;
    if (ticked().length) q.cameras = ticked().join(",");
    history.replaceState(null, "", `#/events?${new URLSearchParams(q)}`);
    fill(results, h("p", { class: "muted", text: "Searching…" }));
    let r;
    try {
      r = await api("GET", withQuery("/api/events", q));
    } catch (e) {
      if (!gone) { fill(results); err.textContent = `Could not search: ${e.message}`; }
      return;
    }
    if (gone) return;
    const evs = r.events.slice().reverse();
    const n = evs.length;
    fill(results,
      h("p", { id: "evs-count", role: "status", text: `${n}${r.truncated ? "+" : ""} event${n === 1 ? "" : "s"}${kind.value ? ` (${kindLabel(kind.value).toLowerCase()})` : ""}, newest first.` }),
      r.truncated ? h("p", { class: "error", text: "More events than one answer holds: narrow the search." }) : null,
      table(`Events (times in ${zone})`, ["Start", "End", "Camera", "Kind", "Topic", ""],
        evs.map((e) => {
          const s = Date.parse(e.start);
          const end = e.end ? Date.parse(e.end) : null;
          const q2 = new URLSearchParams({ cameras: e.camera, layout: "1", t: new Date(s - PRE_ROLL_MS).toISOString() });
          return [
            h("time", { datetime: e.start, text: dateTime(s) }),
            h("span", { class: end !== null && end > s ? "ev-end" : null, text: end !== null && end > s
              ? `${localDate(new Date(end)) === localDate(new Date(s)) ? clock(end) : dateTime(end)} (${duration((end - s) / 1000)})`
              : e.active ? "still on" : "a moment" }),
            names.get(e.camera) || e.camera,
            h("span", { class: "evl-kind" }, h("i", { class: `swatch ev-${e.kind}`, "aria-hidden": "true" }), kindLabel(e.kind)),
            h("code", { text: e.topic }),
            h("a", { class: "evs-play", href: `#/playback?${q2}`, text: "Play", "aria-label": `Play ${kindLabel(e.kind)} on ${names.get(e.camera) || e.camera} at ${dateTime(s)}` }),
          ];
        }),
        { class: "ev-results", empty: "No events match." }));
  }

  form.addEventListener("submit", (ev) => { ev.preventDefault(); search(); });
  (async () => {
    try {
      const r = await api("GET", "/api/cameras");
      if (gone) return;
      names = new Map(r.cameras.map((c) => [c.id, c.name || c.id]));
      cams.append(...r.cameras.map((c) => h("label", {}, h("input", { type: "checkbox", name: "camera", value: c.id, checked: wanted.has(c.id) }), ` ${c.name || c.id}`)));
    } catch (e) {
      if (!gone) err.textContent = `Could not load cameras: ${e.message}`;
    }
    if (!gone) search();
  })();
  return () => { gone = true; };
}
