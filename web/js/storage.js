// Storage (admins): recorded bytes per camera, retention, free space.

import { api } from "./api.js";
import { h, fill, table } from "./dom.js";
import { bytes, dateTime } from "./format.js";

export function mount(root) {
  const body = h("div", {}, h("p", { class: "muted", text: "Loading…" }));
  fill(root, h("div", { class: "view-head" }, h("h1", { text: "Storage" })), body);
  let gone = false;

  async function load() {
    try {
      const [s, c] = await Promise.all([api("GET", "/api/storage"), api("GET", "/api/cameras")]);
      if (gone) return;
      const names = new Map(c.cameras.map((x) => [x.id, x.name]));
      const total = s.cameras.reduce((n, x) => n + x.bytes, 0);
      const low = s.volume_free_bytes !== null && s.volume_free_bytes < s.min_free_bytes * 1.1;
      const held = s.cameras.reduce((n, x) => n + (x.held_bytes || 0), 0);
      fill(body,
        s.alarm ? h("p", { class: "error", role: "alert", text: s.alarm }) : null,
        h("dl", { class: "facts" },
          h("div", {}, h("dt", { text: "Recorded" }), h("dd", { text: bytes(total) })),
          h("div", { class: low ? "warn" : null }, h("dt", { text: "Free on the volume" }), h("dd", { text: s.volume_free_bytes === null ? "unknown" : bytes(s.volume_free_bytes) })),
          h("div", {}, h("dt", { text: "Kept free (oldest recordings deleted first)" }), h("dd", { text: bytes(s.min_free_bytes) })),
          h("div", {}, h("dt", { text: "Under legal hold (never deleted)" }), h("dd", { text: bytes(held) })),
          h("div", {}, h("dt", { text: "Segment length" }), h("dd", { text: `${s.segment_seconds} s` }))),
        table("Recordings per camera", ["Camera", "Recorded", "Held", "Segments", "Oldest", "Newest", "Keep for", "Size limit"],
          s.cameras.map((x) => [
            names.get(x.id) || x.id,
            bytes(x.bytes),
            bytes(x.held_bytes || 0),
            String(x.segments),
            dateTime(x.oldest) || "none",
            dateTime(x.newest) || "none",
            x.retain_days ? `${x.retain_days} days` : "no limit",
            x.retain_bytes ? bytes(x.retain_bytes) : "no limit",
          ]), { empty: "No cameras." }));
    } catch (e) {
      if (!gone) fill(body, h("p", { class: "error", role: "alert", text: `Could not load storage: ${e.message}` }));
    }
  }
  load();
  const timer = setInterval(load, 30000);
  return () => { gone = true; clearInterval(timer); };
}
