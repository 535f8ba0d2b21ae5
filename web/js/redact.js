// Redaction boxes for an export (subject-access copies): a still frame of a
// chosen camera at the range's start, on which the operator drags one or more
// rectangles with the mouse (or a finger), removes any, and picks fill or blur,
// inverse and muting. Boxes are kept as fractions 0..1 of the picture, so they
// mean the same region at any resolution; `value()` is the `redact` object
// POST /api/exports accepts. The server does the redacting; this only draws.

import { seg } from "./api.js";
import { h, fill, field } from "./dom.js";
import { dateTime } from "./format.js";

/** Width of the frame asked for (the box fractions do not depend on it). */
const FRAME_WIDTH = 640;
/** Smallest box kept, as a fraction of either side: a click is not a box. */
const MIN_SIDE = 0.01;
/** Most boxes (the server's MAX_BOXES). */
const MAX_BOXES = 64;

const clamp01 = (v) => Math.min(1, Math.max(0, v));
const round4 = (v) => Math.round(v * 10000) / 10000;
const pct = (v) => `${(v * 100).toFixed(1)} %`;

/**
 * The redaction editor. `onChange()` is called when it is switched on or off.
 * Returns `{ el, enabled(), value(), show(camera, at) }`: `value()` is the
 * request's `redact` or throws an Error saying what is missing; `show` loads
 * the frame of `camera` at `at` (a Date) when the editor is on.
 */
export function redactEditor() {
  const on = h("input", { type: "checkbox", id: "export-redact", name: "redact" });
  const camera = h("select", { id: "export-redact-camera", name: "redact_camera" });
  const reload = h("button", { type: "button", id: "export-redact-reload", text: "Show frame" });
  const img = h("img", { id: "export-redact-frame", alt: "Still frame to draw redaction boxes on", draggable: false });
  const layer = h("div", { class: "redact-layer", "aria-hidden": "true" });
  const stage = h("div", { id: "export-redact-stage", class: "redact-stage", hidden: true }, img, layer);
  const frameNote = h("p", { id: "export-redact-frame-note", class: "muted", role: "status" });
  const list = h("ol", { id: "export-redact-boxes", class: "redact-boxes" });
  const clear = h("button", { type: "button", id: "export-redact-clear", class: "quiet", text: "Remove all boxes" });
  const modeFill = h("input", { type: "radio", name: "redact_mode", value: "fill", id: "export-redact-fill", checked: true });
  const modeBlur = h("input", { type: "radio", name: "redact_mode", value: "blur", id: "export-redact-blur" });
  const invert = h("input", { type: "checkbox", id: "export-redact-invert", name: "invert" });
  const mute = h("input", { type: "checkbox", id: "export-redact-mute", name: "mute_audio" });
  const panel = h("div", { id: "export-redact-panel", class: "redact-panel", hidden: true },
    h("p", { class: "hint", text: "Drag on the picture to draw a box over each person or thing to hide. The boxes apply to every chosen camera for the whole range; the copies are re-encoded as H.264 with the date and time burned in, and the native footage is left out of the package." }),
    h("div", { class: "controls" }, field("Frame from", camera), reload),
    stage,
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

  /** @type {{x: number, y: number, w: number, h: number}[]} */
  let boxes = [];
  let draft = null;
  let objectUrl = null;
  let want = null;
  let loading = 0;

  function render() {
    const blur = modeBlur.checked;
    const shown = draft ? [...boxes, draft] : boxes;
    fill(layer, shown.map((b, i) => {
      const d = h("div", { class: `redact-box${blur ? " blur" : ""}${b === draft ? " draft" : ""}` },
        b === draft ? null : h("span", { text: String(i + 1) }));
      // Through the CSSOM: the CSP allows no style attributes.
      Object.assign(d.style, { left: `${b.x * 100}%`, top: `${b.y * 100}%`, width: `${b.w * 100}%`, height: `${b.h * 100}%` });
      return d;
    }));
    fill(list, boxes.map((b, i) => h("li", { dataset: { box: String(i) } },
      `Box ${i + 1}: from ${pct(b.x)} across, ${pct(b.y)} down; ${pct(b.w)} wide, ${pct(b.h)} high `,
      h("button", { type: "button", class: "quiet", "aria-label": `Remove box ${i + 1}`, text: "Remove",
        onclick: () => { boxes.splice(i, 1); render(); } }))));
    clear.hidden = boxes.length === 0;
  }

  /** Where a pointer event is, in fractions of the picture. */
  function at(ev) {
    const r = img.getBoundingClientRect();
    return { x: clamp01((ev.clientX - r.left) / r.width), y: clamp01((ev.clientY - r.top) / r.height) };
  }
  const span = (a, b) => {
    const x = round4(Math.min(a.x, b.x));
    const y = round4(Math.min(a.y, b.y));
    return { x, y, w: round4(Math.min(Math.abs(a.x - b.x), 1 - x)), h: round4(Math.min(Math.abs(a.y - b.y), 1 - y)) };
  };
  let origin = null;
  stage.addEventListener("pointerdown", (ev) => {
    if (ev.button !== 0 || !img.naturalWidth) return;
    ev.preventDefault();
    stage.setPointerCapture(ev.pointerId);
    origin = at(ev);
    draft = { ...origin, w: 0, h: 0 };
  });
  stage.addEventListener("pointermove", (ev) => {
    if (!origin) return;
    draft = span(origin, at(ev));
    render();
  });
  const finish = (ev) => {
    if (!origin) return;
    const b = span(origin, at(ev));
    origin = null;
    draft = null;
    if (b.w >= MIN_SIDE && b.h >= MIN_SIDE && boxes.length < MAX_BOXES) boxes.push(b);
    render();
  };
  stage.addEventListener("pointerup", finish);
  stage.addEventListener("pointercancel", () => { origin = null; draft = null; render(); });
  clear.addEventListener("click", () => { boxes = []; render(); });
  modeFill.addEventListener("change", render);
  modeBlur.addEventListener("change", render);

  /** Loads the frame at `want` (falling back to the latest picture). */
  async function load() {
    if (!on.checked || !want || !want.camera) return;
    const n = ++loading;
    const { camera: id, at: t } = want;
    frameNote.textContent = "Loading a frame…";
    const get = (q) => fetch(`/api/cameras/${seg(id)}/snapshot.jpg?${q}width=${FRAME_WIDTH}`,
      { credentials: "same-origin", cache: "no-store" });
    try {
      let r = t && !Number.isNaN(t.getTime()) ? await get(`at=${encodeURIComponent(t.toISOString())}&`) : null;
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
      stage.hidden = false;
      const ft = r.headers.get("x-frame-time");
      frameNote.textContent = `${latest ? "Nothing recorded at the start of the range; this is the latest picture" : "Frame"}${ft ? ` recorded at ${dateTime(ft)}` : ""}.`;
    } catch (e) {
      if (n === loading) frameNote.textContent = `Could not load a frame: ${e.message}`;
    }
  }

  on.addEventListener("change", () => {
    panel.hidden = !on.checked;
    if (on.checked) load();
  });
  camera.addEventListener("change", () => { if (want) want.camera = camera.value; load(); });
  reload.addEventListener("click", load);
  render();

  return {
    el,
    enabled: () => on.checked,
    /** Offers `cams` ([{id, name}], the chosen ones) as frame sources and shows a frame at `t`. */
    show(cams, t) {
      const keep = camera.value;
      fill(camera, cams.map((c) => h("option", { value: c.id, text: c.name })));
      if (cams.some((c) => c.id === keep)) camera.value = keep;
      const next = { camera: camera.value, at: t };
      const same = want && want.camera === next.camera && want.at?.getTime() === t?.getTime();
      want = next;
      if (!same) load();
    },
    value() {
      if (!boxes.length && !mute.checked) throw new Error("Draw at least one redaction box on the frame (or mute the audio).");
      return {
        mode: modeBlur.checked ? "blur" : "fill",
        boxes: boxes.map((b) => ({ ...b })),
        invert: invert.checked,
        mute_audio: mute.checked,
      };
    },
    dispose() { if (objectUrl) URL.revokeObjectURL(objectUrl); },
  };
}
