// Cameras (operators and admins): every camera's health at a glance, from
// `GET /api/cameras`, polled: state and since when (online or offline), the
// time the newest frame arrived (`last_frame`), recording, rates, loss,
// transport, and disk use with how far back the footage reaches.

import { api } from "./api.js";
import { h, fill, table } from "./dom.js";
import { bitrate, bytes, clock, dateTime, duration, tileState, zone } from "./format.js";

const POLL_MS = 5000;

export function mount(root, ctx) {
  const summary = h("p", { id: "cams-summary", role: "status", "aria-live": "polite" });
  const body = h("div", { id: "cams-table" });
  const err = h("p", { class: "error", role: "alert" });
  fill(root,
    h("div", { class: "view-head" }, h("h1", { text: "Cameras" })),
    summary, err, body,
    h("p", { class: "muted", text: `Times in ${zone}. Refreshed every ${POLL_MS / 1000} s. “Last frame” is when the NVR received the camera's newest frame.` }),
    ctx && ctx.me && ctx.me.role === "admin"
      ? h("p", {}, "To add, change or remove a camera, use ", h("a", { href: "#/camera-setup", text: "Camera setup" }), ".")
      : null);

  let gone = false;

  function recording(c) {
    if (c.record === false) return ["No", "recording is off for this camera"];
    if (c.enabled === false) return ["No", "camera disabled"];
    if (c.recorder_error) return ["No", `failing: ${c.recorder_error}`];
    if (c.state !== "streaming") return ["No", "no stream"];
    return ["Yes", c.newest ? `last segment closed ${clock(c.newest)}` : "first segment open"];
  }

  /** When the newest frame arrived: the time today, the date too if older. */
  function lastFrame(c) {
    if (!c.last_frame) return "—";
    const at = Date.parse(c.last_frame);
    return Date.now() - at < 12 * 3600e3 ? clock(c.last_frame) : dateTime(c.last_frame);
  }

  /** Since when the camera is in its state: online since, or offline since. */
  function since(c) {
    const t = c.state === "streaming" ? c.online_since : c.offline_since;
    return t ? dateTime(t) : "—";
  }

  function loss(c) {
    const parts = [];
    const n = (k, one, many) => `${k} ${k === 1 ? one : many}`;
    if (c.lost_packets) parts.push(n(c.lost_packets, "packet lost", "packets lost"));
    if (c.damaged_frames) parts.push(n(c.damaged_frames, "damaged frame", "damaged frames"));
    if (c.dropped_frames) parts.push(n(c.dropped_frames, "frame dropped", "frames dropped"));
    return parts.length ? parts.join(", ") : "none";
  }

  function render(cams) {
    const now = Date.now();
    const online = cams.filter((c) => c.state === "streaming");
    const rec = cams.filter((c) => recording(c)[0] === "Yes");
    const off = cams.filter((c) => c.enabled !== false && c.state !== "streaming");
    summary.className = off.length ? "verify bad" : "verify ok";
    summary.textContent = `${online.length} of ${cams.length} camera${cams.length === 1 ? "" : "s"} online, ${rec.length} recording.`
      + (off.length ? ` Not streaming: ${off.map((c) => `${c.name}${c.offline_since ? ` since ${clock(c.offline_since)}` : ""}`).join("; ")}.` : "");
    const headers = ["Camera", "State", "Since", "Last frame", "Recording", "Bitrate", "Loss", "Transport", "Recorded"];
    fill(body, table("Camera health", headers,
      cams.map((c) => {
        const st = tileState({ cam: c, playerLive: c.state === "streaming", stalledSince: 0, nvrDownSince: 0, now });
        const [yes, why] = recording(c);
        const kept = c.oldest ? `${bytes(c.recorded_bytes)}, ${duration((now - Date.parse(c.oldest)) / 1000)} back` : bytes(c.recorded_bytes || 0);
        return [
          h("strong", { text: c.name }),
          h("span", { class: `badge state-${st.kind}`, text: c.state === "streaming" ? "Online" : st.label }),
          since(c),
          lastFrame(c),
          h("span", { class: yes === "Yes" ? "ok-text" : "warn-text", title: why, text: `${yes} · ${why}` }),
          c.state === "streaming" ? `${bitrate(c.bitrate_bps)}${c.fps ? `, ${c.fps.toFixed(1)} fps` : ""}` : "",
          loss(c),
          (c.transport || "").toUpperCase(),
          kept,
        ];
      }), { class: "cameras", empty: "No cameras are configured for you." }));
    for (const tr of body.querySelectorAll("tbody tr")) {
      const i = [...tr.parentElement.children].indexOf(tr);
      if (cams[i]) tr.dataset.camera = cams[i].id;
      // Labels for the phone layout, where each row is a card.
      [...tr.cells].forEach((td, j) => { td.dataset.label = headers[j] || ""; });
    }
  }

  async function poll() {
    try {
      const r = await api("GET", "/api/cameras");
      if (gone) return;
      err.textContent = "";
      render(r.cameras);
    } catch (e) {
      if (!gone) err.textContent = `Could not reach the NVR: ${e.message}`;
    }
  }

  poll();
  const timer = setInterval(poll, POLL_MS);
  return () => { gone = true; clearInterval(timer); };
}
