// The disclosure register (admins): every export, who received it, why and on
// what legal basis, with subject-access due dates. Exports expire; the register
// does not. The CSV is made by the server (GET /api/disclosures.csv).

import { api, withQuery } from "./api.js";
import { h, fill, field, table } from "./dom.js";
import { dateTime, fromWall, localDate, dayStart, nextDay, wall, zone, bytes } from "./format.js";

export function mount(root) {
  const from = h("input", { type: "date", id: "disclosures-from", name: "from" });
  const until = h("input", { type: "date", id: "disclosures-until", name: "until" });
  const csv = h("a", { id: "disclosures-csv", class: "button", text: "Download CSV" });
  const err = h("p", { class: "error", role: "alert" });
  const results = h("div", { "aria-live": "polite" }, h("p", { class: "muted", text: "Loading…" }));
  const form = h("form", { class: "panel controls", id: "disclosures-filter" },
    field(`Exported from (${zone})`, from), field("until (inclusive)", until),
    h("div", { class: "buttons" }, h("button", { type: "submit", text: "Show" }), csv));
  fill(root,
    h("div", { class: "view-head" }, h("h1", { text: "Disclosure register" })),
    h("p", { class: "muted", text: "Every export made on this server: who received the footage, why, and on what legal basis. Subject-access requests show the day the response is due (one calendar month after receipt)." }),
    form, err, results);

  const today = new Date();
  until.value = localDate(today);
  const w = wall(today);
  from.value = localDate(fromWall(w.y - 1, w.m, w.d));
  let gone = false;

  function query() {
    const q = {};
    if (from.value) q.start = dayStart(from.value).toISOString();
    if (until.value) q.end = nextDay(dayStart(until.value)).toISOString();
    return q;
  }

  async function load() {
    err.textContent = "";
    const q = query();
    csv.href = withQuery("/api/disclosures.csv", q);
    csv.setAttribute("download", `cleannvr-disclosures-${localDate(new Date())}.csv`);
    let r;
    try {
      r = await api("GET", withQuery("/api/disclosures", q));
    } catch (e) {
      if (!gone) err.textContent = `Could not load the register: ${e.message}`;
      return;
    }
    if (gone) return;
    const rows = r.disclosures.slice().reverse();
    fill(results,
      r.truncated ? h("p", { class: "error", text: "Only the first 10,000 exports of this period are shown: narrow the dates." }) : null,
      table(`Exports, newest first (times in ${zone})`,
        ["Exported", "By", "Cameras", "Footage", "Recipient", "Reference", "Legal basis", "Reason", "Due", "Files", "Manifest SHA-256"],
        rows.map((x) => {
          const d = x.disclosure || {};
          const late = x.response_due && x.exported_at.slice(0, 10) > x.response_due;
          return [
            dateTime(x.exported_at), x.exported_by, x.cameras.join(", "),
            `${dateTime(x.start)} – ${dateTime(x.end)}${x.kind === "master" ? "" : ` (${x.kind === "redacted" ? "redacted" : "with working copy"})`}`,
            d.recipient || h("span", { class: "muted", text: "not recorded (command line)" }),
            d.reference || "", d.legal_basis || "", x.reason,
            x.response_due ? h("span", { class: late ? "late" : null, text: `${x.response_due}${late ? " (sent late)" : ""}`, title: `Request received ${d.request_received}` }) : "",
            `${x.files} · ${bytes(x.bytes)}`,
            h("code", { class: "hash", text: x.manifest_sha256.slice(0, 16), title: x.manifest_sha256 }),
          ];
        }),
        { class: "disclosures", empty: "No exports in this period." }));
  }

  form.addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
  load();
  return () => { gone = true; };
}
