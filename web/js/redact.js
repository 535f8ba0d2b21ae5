// Redaction boxes for an export (subject-access copies): a still frame of a
// chosen camera within the range, on which the operator drags one or more
// rectangles with the mouse (or a finger), removes any, and picks fill or blur,
// inverse and muting. Boxes are kept as fractions 0..1 of the picture, so they
// mean the same region at any resolution; `value()` is the `redact` object
// POST /api/exports accepts. The server does the redacting; this only draws.
//
// A box that must follow someone moves by key points: the operator selects the
// box, scrubs the preview to another time and moves or resizes the box there,
// which sets a key point at the time of the frame shown (the picture the box
// was placed on). Between key points the server moves the box linearly and
// keeps it still before the first and after the last; the editor draws it the
// same way at the preview's time. A box with one key point stays put.

import { seg } from "./api.js";
import { h, fill, field } from "./dom.js";
import { clock, dateTime } from "./format.js";

/** Width of the frame asked for (the box fractions do not depend on it). */
const FRAME_WIDTH = 640;
/** Smallest box kept, as a fraction of either side: a click is not a box. */
const MIN_SIDE = 0.01;
/** Most boxes (the server's MAX_BOXES). */
const MAX_BOXES = 64;
/** Most key points per box (the server's MAX_KEYS). */
const MAX_KEYS = 1000;
/** Key points this close (ms) are one: moving a box again on the same frame replaces it. */
const SAME_KEY_MS = 100;
/** How near (CSS px) to a selected box's bottom right corner a drag resizes it. */
const HANDLE_PX = 10;
/** Wait (ms) after the preview slider last moved before asking for its frame. */
const SCRUB_WAIT_MS = 250;

const clamp01 = (v) => Math.min(1, Math.max(0, v));
const round4 = (v) => Math.round(v * 10000) / 10000;
const pct = (v) => `${(v * 100).toFixed(1)} %`;
const rectOf = (k) => ({ x: k.x, y: k.y, w: k.w, h: k.h });
const sameRect = (a, b) => a.x === b.x && a.y === b.y && a.w === b.w && a.h === b.h;

/**
 * Where a box with key points `keys` ({t: ms, x, y, w, h}, in time order) is at
 * `t`: linear between two keys, still before the first and after the last (as
 * the server's `transcode::redact` places it).
 */
export function rectAt(keys, t) {
  const first = keys[0];
  if (keys.length === 1 || t <= first.t) return rectOf(first);
  for (let i = 1; i < keys.length; i++) {
    const a = keys[i - 1];
    const b = keys[i];
    if (t <= b.t) {
      const f = b.t > a.t ? (t - a.t) / (b.t - a.t) : 1;
      const l = (p, q) => p + (q - p) * f;
      return { x: l(a.x, b.x), y: l(a.y, b.y), w: l(a.w, b.w), h: l(a.h, b.h) };
    }
  }
  return rectOf(keys[keys.length - 1]);
}

/** `09:05:01.4`: a key point's time in the zone, to a tenth of a second. */
const keyClock = (t) => `${clock(new Date(t))}.${Math.floor((((t % 1000) + 1000) % 1000) / 100)}`;

/**
 * The redaction editor. Returns `{ el, enabled(), value(), show(cams, start, end) }`:
 * `value()` is the request's `redact` or throws an Error saying what is missing;
 * `show` offers the chosen cameras as frame sources for the range `start`..`end`
 * (Dates) and loads a frame when the editor is on.
 */
export function redactEditor() {
  const on = h("input", { type: "checkbox", id: "export-redact", name: "redact" });
  const camera = h("select", { id: "export-redact-camera", name: "redact_camera" });
  const reload = h("button", { type: "button", id: "export-redact-reload", text: "Show frame" });
  const img = h("img", { id: "export-redact-frame", alt: "Still frame to draw redaction boxes on", draggable: false });
  const layer = h("div", { class: "redact-layer", "aria-hidden": "true" });
  const stage = h("div", { id: "export-redact-stage", class: "redact-stage", hidden: true }, img, layer);
  const scrub = h("input", { type: "range", id: "export-redact-time", name: "redact_time", min: 0, max: 0, step: 1, value: 0 });
  const scrubText = h("output", { id: "export-redact-time-text", for: "export-redact-time" });
  const ticks = h("div", { id: "export-redact-ticks", class: "redact-ticks", role: "group", "aria-label": "Key points (go to)" });
  const scrubber = h("div", { class: "redact-scrub" },
    h("label", { for: "export-redact-time" }, "Preview time ", scrubText), scrub, ticks);
  const frameNote = h("p", { id: "export-redact-frame-note", class: "muted", role: "status" });
  const list = h("ol", { id: "export-redact-boxes", class: "redact-boxes" });
  const clear = h("button", { type: "button", id: "export-redact-clear", class: "quiet", text: "Remove all boxes" });
  const modeFill = h("input", { type: "radio", name: "redact_mode", value: "fill", id: "export-redact-fill", checked: true });
  const modeBlur = h("input", { type: "radio", name: "redact_mode", value: "blur", id: "export-redact-blur" });
  const invert = h("input", { type: "checkbox", id: "export-redact-invert", name: "invert" });
  const mute = h("input", { type: "checkbox", id: "export-redact-mute", name: "mute_audio" });
  const panel = h("div", { id: "export-redact-panel", class: "redact-panel", hidden: true },
    h("p", { class: "hint", text: "Drag on the picture to draw a box over each person or thing to hide. The boxes apply to every chosen camera for the whole range; the copies are re-encoded as H.264 with the date and time burned in, and the native footage is left out of the package." }),
    h("p", { class: "hint", text: "To follow someone who moves: click a box to select it, move the preview time, then drag the box (or its bottom right corner, to resize it) onto them. That sets a key point at that frame; between key points the box moves in a straight line, and before the first and after the last it stays still." }),
    h("div", { class: "controls" }, field("Frame from", camera), reload),
    stage,
    scrubber,
    frameNote,
    list,
    h("div", { class: "buttons" }, clear),
    h("fieldset", {}, h("legend", { text: "Hide with" }),
      h("label", {}, modeFill, " Solid black fill"),
      h("label", {}, modeBlur, " Blur")),
    h("label", {}, invert, " Hide everything except the boxes (inverse)"),
    h("label", {}, mute, " Mute the audio (a silent track of the same length is kept)"));
  const el = h("fieldset", { class: "redact" },
    h("legend", { text: "Redaction (subject access)" }),
    h("label", {}, on, " Make redacted copies instead of the native footage"),
    panel);

  /** Each box is its key points, `{t: ms since the epoch, x, y, w, h}` in time order. @type {{keys: object[]}[]} */
  let boxes = [];
  /** The selected box (moved, resized and given key points), or null. */
  let selected = null;
  /** The box being drawn. */
  let draft = null;
  /** A move or resize under way: `{box, mode, from, t, start, rect}`. */
  let drag = null;
  /** The export's range, ms since the epoch, or null before the form gives one. */
  let range = null;
  /** When the frame shown was recorded (ms): where boxes are drawn and key points set. */
  let shownAt = null;
  let objectUrl = null;
  let want = null;
  let loading = 0;
  let scrubTimer = null;

  /** The preview slider's time (ms), or null without a range. */
  const scrubAt = () => (range ? range.start + Number(scrub.value) * 1000 : null);
  /** Where boxes are shown and key points set: the shown frame's time, else the slider's. */
  const now = () => shownAt ?? scrubAt() ?? 0;
  const offset = (t) => (range ? ` (${t >= range.start ? "+" : "−"}${(Math.abs(t - range.start) / 1000).toFixed(1)} s)` : "");
  const where = (b) => (drag && drag.box === b ? drag.rect : rectAt(b.keys, now()));

  function render() {
    const blur = modeBlur.checked;
    const t = now();
    const shown = boxes.map((b, i) => ({ b, r: where(b), i }));
    if (draft) shown.push({ b: null, r: draft, i: -1 });
    fill(layer, shown.map(({ b, r, i }) => {
      const sel = b && b === selected;
      const d = h("div", { class: `redact-box${blur ? " blur" : ""}${b ? "" : " draft"}${sel ? " selected" : ""}` },
        b ? h("span", { text: String(i + 1) }) : null,
        sel ? h("div", { class: "redact-handle" }) : null);
      // Through the CSSOM: the CSP allows no style attributes.
      Object.assign(d.style, { left: `${r.x * 100}%`, top: `${r.y * 100}%`, width: `${r.w * 100}%`, height: `${r.h * 100}%` });
      return d;
    }));
    fill(list, boxes.map((b, i) => {
      const r = rectAt(b.keys, t);
      const n = i + 1;
      const moving = b.keys.length > 1;
      return h("li", { class: b === selected ? "selected" : null, dataset: { box: String(i) } },
        `Box ${n}: from ${pct(r.x)} across, ${pct(r.y)} down; ${pct(r.w)} wide, ${pct(r.h)} high`,
        moving ? ` at this frame; moves through ${b.keys.length} key points ` : "; still for the whole range ",
        h("button", { type: "button", class: "quiet", "aria-pressed": String(b === selected), "aria-label": `Select box ${n}`,
          text: b === selected ? "Selected" : "Select", onclick: () => { selected = b === selected ? null : b; render(); } }),
        h("button", { type: "button", class: "quiet", "aria-label": `Remove box ${n}`, text: "Remove",
          onclick: () => { boxes.splice(i, 1); if (selected === b) selected = null; render(); } }),
        moving ? h("ol", { class: "redact-keys" }, b.keys.map((k, j) => h("li", {},
          h("button", { type: "button", class: "quiet", text: `${keyClock(k.t)}${offset(k.t)}`,
            "aria-label": `Show box ${n} at key point ${j + 1}`, onclick: () => { selected = b; seek(k.t); } }),
          ` ${pct(k.x)} across, ${pct(k.y)} down; ${pct(k.w)} × ${pct(k.h)} `,
          h("button", { type: "button", class: "quiet", text: "Delete", "aria-label": `Delete key point ${j + 1} of box ${n}`,
            onclick: () => { b.keys.splice(j, 1); render(); } })))) : null);
    }));
    // Every box's key points as ticks under the slider (one set on a frame just before the
    // range, as the first frame usually is, at its start); the selected box's stand out.
    const length = range ? range.end - range.start : 0;
    fill(ticks, length > 0 ? boxes.flatMap((b, i) => b.keys.map((k) => {
      const tick = h("button", { type: "button", class: `redact-tick${b === selected ? " selected" : ""}`,
        title: `Box ${i + 1}: key point at ${keyClock(k.t)}`, "aria-label": `Box ${i + 1}: key point at ${keyClock(k.t)}`,
        onclick: () => { selected = b; seek(k.t); } });
      tick.style.left = `${clamp01((k.t - range.start) / length) * 100}%`;
      return tick;
    })) : []);
    clear.hidden = boxes.length === 0;
  }

  /** Sets `box`'s key point at `t` to `r`, replacing one at the same frame. */
  function setKey(box, t, r) {
    const k = { t, ...r };
    const same = box.keys.findIndex((x) => Math.abs(x.t - t) <= SAME_KEY_MS);
    if (same >= 0) box.keys[same] = { ...k, t: box.keys[same].t };
    else if (box.keys.length < MAX_KEYS) {
      box.keys.push(k);
      box.keys.sort((a, b) => a.t - b.t);
    } else frameNote.textContent = `A box can have at most ${MAX_KEYS} key points.`;
  }

  /** Where a pointer event is, in fractions of the picture. */
  function at(ev) {
    const r = img.getBoundingClientRect();
    return { x: clamp01((ev.clientX - r.left) / r.width), y: clamp01((ev.clientY - r.top) / r.height) };
  }
  /** What a pointer at `ev` would grab: the selected box's corner, else the topmost box under it. */
  function hit(ev) {
    const ir = img.getBoundingClientRect();
    const px = ev.clientX - ir.left;
    const py = ev.clientY - ir.top;
    if (selected) {
      const r = where(selected);
      if (Math.abs(px - (r.x + r.w) * ir.width) <= HANDLE_PX && Math.abs(py - (r.y + r.h) * ir.height) <= HANDLE_PX) {
        return { box: selected, mode: "resize" };
      }
    }
    for (let i = boxes.length - 1; i >= 0; i--) {
      const r = where(boxes[i]);
      if (px >= r.x * ir.width && px <= (r.x + r.w) * ir.width && py >= r.y * ir.height && py <= (r.y + r.h) * ir.height) {
        return { box: boxes[i], mode: "move" };
      }
    }
    return null;
  }
  const span = (a, b) => {
    const x = round4(Math.min(a.x, b.x));
    const y = round4(Math.min(a.y, b.y));
    return { x, y, w: round4(Math.min(Math.abs(a.x - b.x), 1 - x)), h: round4(Math.min(Math.abs(a.y - b.y), 1 - y)) };
  };
  /** `drag`'s box after the pointer moved to `p`: shifted (inside the picture) or resized from its top left. */
  function dragged(p) {
    const s = drag.start;
    if (drag.mode === "move") {
      const w = round4(s.w);
      const hh = round4(s.h);
      return { x: round4(Math.min(Math.max(0, s.x + p.x - drag.from.x), 1 - w)), y: round4(Math.min(Math.max(0, s.y + p.y - drag.from.y), 1 - hh)), w, h: hh };
    }
    const x = round4(s.x);
    const y = round4(s.y);
    return { x, y, w: round4(Math.min(Math.max(MIN_SIDE, p.x - x), 1 - x)), h: round4(Math.min(Math.max(MIN_SIDE, p.y - y), 1 - y)) };
  }
  let origin = null;
  stage.addEventListener("pointerdown", (ev) => {
    if (ev.button !== 0 || !img.naturalWidth) return;
    ev.preventDefault();
    stage.setPointerCapture(ev.pointerId);
    const got = hit(ev);
    if (got) {
      // The key point goes to the frame the box was placed on, even if another arrives meanwhile.
      const t = now();
      const r = rectAt(got.box.keys, t);
      selected = got.box;
      drag = { ...got, from: at(ev), t, start: r, rect: r };
      render();
      return;
    }
    selected = null;
    origin = at(ev);
    draft = { ...origin, w: 0, h: 0 };
    render();
  });
  stage.addEventListener("pointermove", (ev) => {
    if (drag) {
      drag.rect = dragged(at(ev));
      render();
    } else if (origin) {
      draft = span(origin, at(ev));
      render();
    } else {
      const got = img.naturalWidth ? hit(ev) : null;
      stage.style.cursor = got ? (got.mode === "move" ? "move" : "nwse-resize") : "";
    }
  });
  const finish = (ev) => {
    if (drag) {
      const d = drag;
      const r = dragged(at(ev));
      drag = null;
      // A click selects; only a box that moved or changed size gets a key point.
      if (!sameRect(r, d.start)) setKey(d.box, d.t, r);
      render();
      return;
    }
    if (!origin) return;
    const b = span(origin, at(ev));
    origin = null;
    draft = null;
    if (b.w >= MIN_SIDE && b.h >= MIN_SIDE && boxes.length < MAX_BOXES) {
      const box = { keys: [{ t: now(), ...b }] };
      boxes.push(box);
      selected = box;
    }
    render();
  };
  stage.addEventListener("pointerup", finish);
  stage.addEventListener("pointercancel", () => { origin = null; draft = null; drag = null; render(); });
  clear.addEventListener("click", () => { boxes = []; selected = null; render(); });
  modeFill.addEventListener("change", render);
  modeBlur.addEventListener("change", render);

  function showScrub() {
    const t = scrubAt();
    scrubText.textContent = t === null ? "" : `${keyClock(t)}${offset(t)}`;
  }
  /** Moves the preview to `t` (ms) and loads the frame there. */
  function seek(t) {
    if (range) scrub.value = String(Math.round((t - range.start) / 1000));
    showScrub();
    clearTimeout(scrubTimer);
    load(t);
  }
  scrub.addEventListener("input", () => {
    showScrub();
    clearTimeout(scrubTimer);
    scrubTimer = setTimeout(() => load(), SCRUB_WAIT_MS);
  });
  scrub.addEventListener("change", () => { clearTimeout(scrubTimer); load(); });

  /** Loads the frame at `t` (ms; default the slider's time), falling back to the latest picture. */
  async function load(t = scrubAt()) {
    if (!on.checked || !want || !want.camera) return;
    const n = ++loading;
    const id = want.camera;
    // Busy until the newest frame asked for is shown (or failed).
    stage.setAttribute("aria-busy", "true");
    frameNote.textContent = "Loading a frame…";
    const get = (q) => fetch(`/api/cameras/${seg(id)}/snapshot.jpg?${q}width=${FRAME_WIDTH}`,
      { credentials: "same-origin", cache: "no-store" });
    try {
      const asked = t !== null && !Number.isNaN(t) ? new Date(t) : null;
      let r = asked ? await get(`at=${encodeURIComponent(asked.toISOString())}&`) : null;
      let latest = false;
      if (!r || r.status === 404) { r = await get(""); latest = true; }
      if (n !== loading) return;
      if (!r.ok) {
        stage.hidden = true;
        frameNote.textContent = r.status === 404 ? "This camera has no recorded picture to draw on." : `Could not load a frame (HTTP ${r.status}).`;
        return;
      }
      const blob = await r.blob();
      if (n !== loading) return;
      if (objectUrl) URL.revokeObjectURL(objectUrl);
      objectUrl = URL.createObjectURL(blob);
      img.src = objectUrl;
      await img.decode().catch(() => {});
      if (n !== loading) return;
      stage.hidden = false;
      const ft = r.headers.get("x-frame-time");
      const frameMs = ft ? new Date(ft).getTime() : NaN;
      // Key points go where the picture was recorded; the latest picture is not of the range.
      shownAt = !latest && !Number.isNaN(frameMs) ? frameMs : t;
      frameNote.textContent = `${latest ? "Nothing recorded at this time; this is the latest picture" : "Frame"}${ft ? ` recorded at ${dateTime(ft)}` : ""}${!latest && !Number.isNaN(frameMs) ? offset(frameMs) : ""}.`;
      render();
    } catch (e) {
      if (n === loading) frameNote.textContent = `Could not load a frame: ${e.message}`;
    } finally {
      if (n === loading) stage.removeAttribute("aria-busy");
    }
  }

  on.addEventListener("change", () => {
    panel.hidden = !on.checked;
    if (on.checked) load();
  });
  camera.addEventListener("change", () => { if (want) want.camera = camera.value; load(); });
  reload.addEventListener("click", () => load());
  render();

  return {
    el,
    enabled: () => on.checked,
    /** Offers `cams` ([{id, name}], the chosen ones) as frame sources for the range `start`..`end` (Dates). */
    show(cams, start, end) {
      const keep = camera.value;
      fill(camera, cams.map((c) => h("option", { value: c.id, text: c.name })));
      if (cams.some((c) => c.id === keep)) camera.value = keep;
      const s = start?.getTime();
      const e = end?.getTime();
      const next = Number.isFinite(s) ? { start: s, end: Number.isFinite(e) && e > s ? e : s } : null;
      const same = want && want.camera === camera.value && range?.start === next?.start && range?.end === next?.end;
      want = { camera: camera.value };
      range = next;
      scrub.max = String(range ? Math.floor((range.end - range.start) / 1000) : 0);
      showScrub();
      if (!same) load();
      else render();
    },
    value() {
      if (!boxes.length && !mute.checked) throw new Error("Draw at least one redaction box on the frame (or mute the audio).");
      return {
        mode: modeBlur.checked ? "blur" : "fill",
        // A box's first key point is its place; one that moves also carries them all.
        boxes: boxes.map((b) => ({
          ...rectOf(b.keys[0]),
          ...(b.keys.length > 1 ? { keys: b.keys.map((k) => ({ at: new Date(k.t).toISOString(), ...rectOf(k) })) } : {}),
        })),
        invert: invert.checked,
        mute_audio: mute.checked,
      };
    },
    dispose() {
      clearTimeout(scrubTimer);
      if (objectUrl) URL.revokeObjectURL(objectUrl);
    },
  };
}
