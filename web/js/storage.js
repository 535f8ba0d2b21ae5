// Storage (admins): recorded bytes per camera, retention, free space, and the
// archive tier (backlog, last upload, last error, whether the bucket answers).

import { api } from "./api.js";
import { h, fill, table } from "./dom.js";
import { bytes, dateTime } from "./format.js";

/** The archive tier: one line of facts and a row per camera. */
function archiveSection(a, names) {
  if (a instanceof Error) {
    return h("section", { id: "archive" }, h("h2", { text: "Archive" }),
      h("p", { class: "error", role: "alert", text: `Could not load the archive status: ${a.message}` }));
  }
  const never = "none yet";
  return h("section", { id: "archive", "aria-label": "Archive" },
    h("h2", { text: "Archive" }),
    a.last_error ? h("div", { class: "error", role: "alert", id: "archive-error" },
      h("p", { text: `Last upload failed${a.last_error_at ? ` at ${dateTime(a.last_error_at)}` : ""}: ${brief(a.last_error)}. Recording continues; uploads retry.` }),
      h("details", {}, h("summary", { text: "Full message" }), h("p", { class: "full", text: a.last_error }))) : null,
    h("dl", { class: "facts" },
      h("div", { class: a.reachable ? null : "warn", id: "archive-reachable" }, h("dt", { text: "Archive cluster" }),
        h("dd", { title: a.unreachable_because || null, text: a.reachable ? "reachable" : `unreachable${a.unreachable_because ? ` (${brief(a.unreachable_because)})` : ""}` })),
      h("div", {}, h("dt", { text: "Prefix" }), h("dd", { text: `${a.prefix}${a.read_only ? " (read only)" : ""}` })),
      h("div", {}, h("dt", { text: "Moves footage older than" }), h("dd", { text: duration(a.after_seconds) })),
      h("div", { class: a.backlog_segments ? "warn" : null, id: "archive-backlog" }, h("dt", { text: "Waiting to upload" }),
        h("dd", { text: `${a.backlog_segments} segments, ${bytes(a.backlog_bytes)}` })),
      h("div", {}, h("dt", { text: "Last upload" }), h("dd", { text: dateTime(a.last_upload) || never }))),
    table("Archive per camera", ["Camera", "Waiting", "Waiting bytes", "Last upload", "Last error"],
      a.cameras.map((x) => [
        names.get(x.id) || x.id,
        String(x.backlog_segments),
        bytes(x.backlog_bytes),
        dateTime(x.last_upload) || never,
        x.last_error ? h("span", { title: x.last_error, text: brief(x.last_error) }) : "none",
      ]), { empty: "No cameras." }));
}

/** What failed and the root cause: an S3 client's message nests every layer's. */
function brief(msg) {
  const parts = msg.split(": ");
  if (parts.length <= 3) return msg;
  const head = parts[0].startsWith("camera ") ? parts.slice(0, 2) : parts.slice(0, 1);
  return `${head.join(": ")}: … ${parts.at(-1)}`;
}

function duration(s) {
  const unit = (n, w) => `${n} ${w}${n === 1 ? "" : "s"}`;
  if (s && s % 86400 === 0) return unit(s / 86400, "day");
  if (s && s % 3600 === 0) return unit(s / 3600, "hour");
  if (s && s % 60 === 0) return unit(s / 60, "minute");
  return `${s} s`;
}

export function mount(root) {
  const body = h("div", {}, h("p", { class: "muted", text: "Loading…" }));
  fill(root, h("div", { class: "view-head" }, h("h1", { text: "Storage" })), body);
  let gone = false;

  async function load() {
    try {
      const [s, c] = await Promise.all([api("GET", "/api/storage"), api("GET", "/api/cameras")]);
      // 404: no archive tier configured.
      const a = s.archive ? await api("GET", "/api/archive").catch((e) => e) : null;
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
          ]), { empty: "No cameras." }),
        a ? archiveSection(a, names) : null);
    } catch (e) {
      if (!gone) fill(body, h("p", { class: "error", role: "alert", text: `Could not load storage: ${e.message}` }));
    }
  }
  load();
  const timer = setInterval(load, 30000);
  return () => { gone = true; clearInterval(timer); };
}
