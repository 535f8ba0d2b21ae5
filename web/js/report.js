// The Code of Practice report (admins): for a period, the camera register, retention
// configured against achieved, recording availability with outages, who accessed
// what, disclosures, holds, failed logins and the audit chain. Built from
// GET /api/report; "Print" gives a clean document (print styles in style.css), and
// the server renders the same report as an HTML or CSV download.

import { api, withQuery } from "./api.js";
import { h, fill, field, table } from "./dom.js";
import { dateTime, localDate, monthStart, nextDay, bytes } from "./format.js";

/** Seconds as `2 d 03:04:05`, `03:04:05` or `12.5 s` (as the server's HTML report). */
function span(s) {
  if (s < 60) return `${s.toFixed(1)} s`;
  const t = Math.round(s);
  const p = (n) => String(n).padStart(2, "0");
  const hms = `${p(Math.floor(t / 3600) % 24)}:${p(Math.floor(t / 60) % 60)}:${p(t % 60)}`;
  const d = Math.floor(t / 86400);
  return d ? `${d} d ${hms}` : hms;
}

const warn = (text) => h("span", { class: "flag warn", text });

export function mount(root) {
  const from = h("input", { type: "date", id: "report-from", name: "from", required: true });
  const to = h("input", { type: "date", id: "report-to", name: "to", required: true });
  const html = h("a", { id: "report-html", class: "button", text: "Download HTML" });
  const csv = h("a", { id: "report-csv", class: "button", text: "Download CSV" });
  const print = h("button", { type: "button", id: "report-print", text: "Print" });
  const err = h("p", { class: "error", role: "alert" });
  const out = h("div", { id: "report", "aria-live": "polite" }, h("p", { class: "muted", text: "Loading…" }));
  const form = h("form", { class: "panel controls no-print", id: "report-filter" },
    field("From (first day)", from), field("To (last day, included)", to),
    h("div", { class: "buttons" }, h("button", { type: "submit", class: "primary", text: "Show" }), print, html, csv));
  fill(root,
    h("div", { class: "view-head" }, h("h1", { text: "Code of Practice report" })),
    h("p", { class: "muted no-print", text: "For the Surveillance Camera Code of Practice review (principle 10): each camera's purpose and review date, retention configured and achieved, how much of the period was recorded, who viewed and exported footage, disclosures, legal holds, failed logins and whether the audit log is intact. Days and times are the server's (its time zone is named with the period)." }),
    form, err, out);

  // The previous calendar month: the period a monthly review covers.
  const now = new Date();
  // Last month, in the server's zone (as the form's days are).
  from.value = localDate(monthStart(now, -1));
  to.value = localDate(nextDay(monthStart(now), -1));
  let gone = false;
  print.addEventListener("click", () => window.print());

  async function load() {
    err.textContent = "";
    const q = { from: from.value, to: to.value };
    html.href = withQuery("/api/report", { ...q, format: "html" });
    csv.href = withQuery("/api/report", { ...q, format: "csv" });
    fill(out, h("p", { class: "muted", text: "Collecting the figures…" }));
    let r;
    try {
      r = await api("GET", withQuery("/api/report", q));
    } catch (e) {
      if (!gone) { fill(out); err.textContent = `Could not make the report: ${e.message}`; }
      return;
    }
    if (!gone) render(r);
  }

  function render(r) {
    const a = r.audit;
    const cp = a.last_checkpoint;
    const f = r.failed_logins;
    fill(out,
      h("p", { class: "report-meta" },
        `Period ${dateTime(r.from)} to ${dateTime(r.to)}, time zone ${r.time_zone}. Server ${r.server_name}, cleannvr ${r.version}; made ${dateTime(r.generated_at)}; availability measured up to ${dateTime(r.measured_to)}.`),

      h("h2", { text: "Camera register" }),
      table("Camera register", ["Camera", "Purpose", "Location", "Lawful basis", "Next review", "State"],
        r.cameras.map((c) => [
          c.name === c.id ? c.id : `${c.name} (${c.id})`,
          c.purpose || warn("No purpose stated"),
          c.location || "", c.lawful_basis || "",
          c.review_date ? (c.review_overdue ? warn(`${c.review_date} (overdue)`) : c.review_date) : h("span", { class: "flag", text: "No review date" }),
          !c.enabled ? "Disabled" : c.record ? "Recording" : "Live view only",
        ]), { class: "report-table", captionHidden: true, empty: "No cameras configured." }),

      h("h2", { text: "Retention and storage" }),
      table("Retention", ["Camera", "Keep (configured)", "Size limit", "Oldest footage held", "Retention achieved", "Footage held", "Deleted by retention in period"],
        r.cameras.map((c) => [
          c.id,
          c.retain_days ? `${c.retain_days} days` : "no age limit",
          c.retain_bytes ? bytes(c.retain_bytes) : "no size limit",
          c.oldest_footage ? dateTime(c.oldest_footage) : "none held",
          c.retention_achieved_days === null ? "" : `${c.retention_achieved_days.toFixed(1)} days`,
          `${bytes(c.held_bytes)} (${c.held_segments} segments)`,
          c.deleted_segments ? `${c.deleted_segments} segments (${bytes(c.deleted_bytes)})` : "0",
        ]), { class: "report-table", captionHidden: true, empty: "No cameras configured." }),
      h("p", { text: `Volume ${r.storage.dir}: ${r.storage.free_bytes === null ? "?" : bytes(r.storage.free_bytes)} free of ${r.storage.total_bytes === null ? "?" : bytes(r.storage.total_bytes)} (retention keeps ${bytes(r.storage.min_free_bytes)} free); footage of all cameras ${bytes(r.storage.footage_bytes)}.` }),

      h("h2", { text: "Recording availability" }),
      table("Availability", ["Camera", "Available", "Recorded", "Of period", "Outages (5 s or longer)", "Total outage"],
        r.cameras.map((c) => [
          c.id,
          c.availability_percent === null ? "" : h("span", { class: "avail", dataset: { id: c.id }, text: `${c.availability_percent.toFixed(2)} %` }),
          span(c.recorded_seconds), span(c.period_seconds), String(c.outage_count), span(c.outage_seconds),
        ]), { class: "report-table", captionHidden: true, empty: "No cameras configured." }),
      h("h3", { text: "Outages" }),
      table("Outages", ["Camera", "From", "To", "Length"],
        r.cameras.flatMap((c) => c.outages.map((g) => [c.id, dateTime(g.start), g.ongoing ? "ongoing at report time" : dateTime(g.end), span(g.seconds)])),
        { class: "report-table outages", captionHidden: true, empty: "No outages in the period." }),

      h("h2", { text: "Access" }),
      table("Access by user", ["User", "Role then", "Role now", "Logins", "Live views", "Playbacks", "Stills", "Exports", "Downloads", "Cameras"],
        r.access.map((u) => [u.user, u.role, u.role_now, String(u.logins), String(u.live_views), String(u.playbacks), String(u.snapshots), String(u.exports), String(u.export_downloads), u.cameras.join(", ")]),
        { class: "report-table access", captionHidden: true, empty: "Nobody viewed or exported footage in the period." }),
      h("p", { text: `${f.total} failed logins${f.setup_refused ? `; ${f.setup_refused} refused first-run setup attempts` : ""}.` }),
      f.total ? table("Failed logins by name tried", ["Name tried", "Failures"], f.by_name.map(([n, c]) => [n, String(c)]), { class: "report-table" }) : null,

      h("h2", { text: "Disclosures" }),
      table("Disclosures", ["Exported", "By", "Cameras", "Footage", "Recipient", "Reference", "Legal basis", "Reason", "SAR due"],
        r.disclosures.map((d) => {
          const x = d.disclosure || {};
          return [dateTime(d.exported_at), d.exported_by, d.cameras.join(", "), `${dateTime(d.start)} – ${dateTime(d.end)}`,
            x.recipient || h("span", { class: "muted", text: "not recorded" }), x.reference || "", x.legal_basis || "", d.reason, d.response_due || ""];
        }), { class: "report-table disclosures", captionHidden: true, empty: "No footage was disclosed in the period." }),
      r.disclosures_truncated ? h("p", { class: "error", text: "Only the first 10,000 disclosures are listed." }) : null,

      h("h2", { text: "Legal holds" }),
      table("Legal holds", ["Cameras", "Footage", "Reason", "Placed by", "Placed", "Until"],
        r.holds.map((x) => [x.cameras.join(", "), `${dateTime(x.start)} – ${dateTime(x.end)}`, x.reason, x.created_by, dateTime(x.created), x.until ? dateTime(x.until) : "until released"]),
        { class: "report-table", captionHidden: true, empty: "No legal holds in force in the period." }),
      h("p", { text: `${r.holds_placed} holds placed and ${r.holds_released} released in the period; ${r.camera_changes} camera configuration changes.` }),

      h("h2", { text: "Camera isolation audit" }),
      table("Camera isolation audit", ["Camera", "Latest audit", "Run by", "Result", "Findings"],
        r.isolation.map((x) => [x.camera, x.audited ? dateTime(x.audited) : "never", x.by || "",
          h("span", { class: x.verdict === "isolated" ? "ok-text" : "error strong", text: x.result }), x.findings.join("; ")]),
        { class: "report-table isolation", captionHidden: true, empty: "No camera is configured by ONVIF, so none can be audited." }),

      h("h2", { text: "Audit log" }),
      h("p", { id: "report-chain" },
        a.chain_intact ? h("span", { class: "ok-text", text: "Intact" }) : h("span", { class: "error strong", text: "BROKEN" }),
        a.chain_intact ? `: all ${a.verified} entries verify; ${a.entries_in_period} were written in the period.` : `: ${a.broken}`),
      h("p", {}, cp
        ? [`${a.checkpoints} signed checkpoints checked. The newest, signed ${dateTime(cp.time)}, covers entry ${cp.seq} with hash `, h("code", { class: "hash", text: cp.hash }), " (compare it with the newest “audit checkpoint” line in the server's log or syslog)."]
        : "No signed checkpoints yet."));
  }

  form.addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
  load();
  return () => { gone = true; };
}
