// PTZ controls for an enlarged live tile: a pan/tilt pad, zoom, home and
// presets. Holding a button repeats the move every few hundred ms; the
// server stops the camera about a second after the last one, so a closed
// tab or a lost network never leaves a camera moving.

import { api, seg } from "./api.js";
import { h } from "./dom.js";

const REPEAT_MS = 300;

/**
 * Returns the controls for `cam` (or null when the user may not steer, or
 * the camera has no PTZ service). `user` is `/api/me`'s user.
 */
export async function ptzControls(cam, user) {
  if (!cam.onvif || !user?.ptz) return null;
  const base = `/api/cameras/${seg(cam.id)}/ptz`;
  let presets;
  try {
    presets = (await api("GET", `${base}/presets`)).presets;
  } catch {
    return null; // no PTZ service, or the camera is unreachable
  }
  const note = h("p", { class: "muted ptz-note", role: "status" });
  const say = (text) => { note.textContent = text || ""; };
  let timer = null;
  let moving = false;
  /** The hold in progress; a new hold or a stop replaces it. */
  let current = null;
  /** The last request sent, so a stop never overtakes a move. */
  let flight = Promise.resolve();

  async function send(path, body = {}) {
    try {
      await api("POST", `${base}/${path}`, body);
      say("");
    } catch (e) {
      say(e.message);
      stop();
    }
  }
  // Each move waits for the previous one's answer, then repeats.
  function start(v) {
    stop(false);
    moving = true;
    const mine = {};
    current = mine;
    const tick = async () => {
      if (current !== mine) return;
      flight = send("move", v);
      await flight;
      if (current === mine) timer = setTimeout(tick, REPEAT_MS);
    };
    tick();
  }
  async function stop(tell = true) {
    current = null;
    if (timer) clearTimeout(timer);
    timer = null;
    const was = moving;
    moving = false;
    if (was && tell) {
      await flight;
      flight = send("stop");
    }
  }
  /** A button that moves while held (pointer, or Space/Enter key). */
  function hold(label, text, v) {
    const b = h("button", { type: "button", class: "icon", title: label, "aria-label": label, text });
    b.addEventListener("pointerdown", (ev) => { ev.preventDefault(); b.setPointerCapture?.(ev.pointerId); start(v); });
    for (const ev of ["pointerup", "pointercancel", "lostpointercapture"]) b.addEventListener(ev, () => stop());
    b.addEventListener("keydown", (ev) => { if ((ev.key === " " || ev.key === "Enter") && !ev.repeat) { ev.preventDefault(); start(v); } });
    b.addEventListener("keyup", (ev) => { if (ev.key === " " || ev.key === "Enter") stop(); });
    b.addEventListener("blur", () => stop());
    return b;
  }

  const s = 0.5;
  const pad = h("div", { class: "ptz-pad", role: "group", "aria-label": `Pan and tilt ${cam.name}` },
    h("span"), hold("Tilt up", "▲", { tilt: s }), h("span"),
    hold("Pan left", "◀", { pan: -s }),
    h("button", { type: "button", class: "icon", title: "Home position", "aria-label": "Home position", text: "⌂", onclick: () => send("home") }),
    hold("Pan right", "▶", { pan: s }),
    h("span"), hold("Tilt down", "▼", { tilt: -s }), h("span"));
  const zoom = h("div", { class: "ptz-zoom", role: "group", "aria-label": `Zoom ${cam.name}` },
    hold("Zoom in", "+", { zoom: s }), hold("Zoom out", "−", { zoom: -s }));

  const select = h("select", { "aria-label": "Preset" });
  function fillPresets(list) {
    select.replaceChildren(...list.map((p) => h("option", { value: p.token, text: p.name })));
    go.disabled = list.length === 0;
  }
  const go = h("button", { type: "button", text: "Go to preset", onclick: () => select.value && send(`presets/${seg(select.value)}/goto`) });
  const presetRow = h("div", { class: "ptz-presets" }, select, go);
  if (user.role === "admin") {
    const name = h("input", { type: "text", maxlength: 64, placeholder: "New preset name", "aria-label": "New preset name" });
    const save = h("button", { type: "button", text: "Save position", onclick: async () => {
      if (!name.value.trim()) { say("Give the preset a name first."); return; }
      try {
        await api("POST", `${base}/presets`, { name: name.value.trim() });
        name.value = "";
        fillPresets((await api("GET", `${base}/presets`)).presets);
        say("Preset saved.");
      } catch (e) { say(e.message); }
    } });
    presetRow.append(name, save);
  }
  fillPresets(presets);

  const el = h("section", { class: "ptz", "aria-label": `PTZ control of ${cam.name}` }, pad, zoom, presetRow, note);
  el.stop = () => stop();
  return el;
}
