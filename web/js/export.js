// Export (operators and admins): cameras, a time range and a reason →
// POST /api/exports; the job is polled until its files can be downloaded.
// The export is evidence: it is remuxed, never re-encoded, with a manifest
// of SHA-256 sums, and it is recorded in the audit log with the reason.

import { api, seg } from "./api.js";
import { holdControl } from "./holds.js";
import { redactEditor } from "./redact.js";
import { h, fill, field } from "./dom.js";
import { bytes, dateTime, fromInput, localDateTimeInput, zone } from "./format.js";

const POLL_MS = 1000;

export function mount(root, ctx) {
  const camBox = h("div", { class: "checks" });
  const start = h("input", { type: "datetime-local", id: "export-start", name: "start", required: true, step: 1 });
  const end = h("input", { type: "datetime-local", id: "export-end", name: "end", required: true, step: 1 });
  const reason = h("textarea", { id: "export-reason", name: "reason", required: true, maxlength: 2000 });
  const recipient = h("input", { id: "export-recipient", name: "recipient", required: true, maxlength: 300, autocomplete: "off" });
  const reference = h("input", { id: "export-reference", name: "reference", maxlength: 300, autocomplete: "off" });
  const basis = h("input", { id: "export-legal-basis", name: "legal_basis", maxlength: 300, autocomplete: "off", list: "export-bases" });
  const bases = h("datalist", { id: "export-bases" }, ...[
    "UK GDPR Art. 15 (subject access)",
    "DPA 2018 Sch. 2 para. 2 (prevention or detection of crime)",
    "DPA 2018 s. 31 (law enforcement)",
    "Court order",
    "Insurance claim (with the data subject's consent)",
    "Internal investigation",
  ].map((b) => h("option", { value: b })));
  const received = h("input", { type: "date", id: "export-request-received", name: "request_received" });
  const redact = redactEditor();
  const err = h("p", { class: "error", role: "alert" });
  const submit = h("button", { type: "submit", class: "primary", text: "Start export" });
  const form = h("form", { id: "export-form", class: "panel", "aria-labelledby": "export-title" },
    h("h2", { id: "export-title", text: "New export" }),
    h("fieldset", {}, h("legend", { text: "Cameras" }), camBox),
    h("div", { class: "controls" },
      field(`From (${zone})`, start),
      field("Until", end)),
    field("Reason", reason, "Required. Recorded in the audit log and the manifest, e.g. an incident or request reference."),
    h("fieldset", { class: "disclosure" }, h("legend", { text: "Disclosure (recorded in the disclosure register)" }),
      field("Recipient", recipient, "Required: who receives the footage, e.g. “PC 1234 Smith, Kent Police” or the data subject."),
      h("div", { class: "controls" },
        field("Reference", reference, "Case, crime or subject-access number."),
        field("Legal basis", basis)),
      bases,
      field("Subject-access request received (optional)", received, "The response is due one calendar month after this day.")),
    redact.el,
    h("div", { class: "buttons" }, submit),
    err);
  const jobsBox = h("div", { class: "jobs", "aria-live": "polite" });
  fill(root,
    h("div", { class: "view-head" }, h("h1", { text: "Export evidence" })),
    h("p", { class: "muted", text: "Exports copy the recorded video without re-encoding, with a manifest of SHA-256 sums; “cleannvr export verify” checks a copy." }),
    form,
    holdControl(ctx, () => {
      const cameras = [...camBox.querySelectorAll("input:checked")].map((b) => b.value);
      const s = fromInput(start.value);
      const e = fromInput(end.value);
      if (!cameras.length) return "Choose at least one camera.";
      if (!start.value || !end.value || !(e > s)) return "Give a range whose end is after its start.";
      return { cameras, start: s, end: e };
    }, "Hold the chosen cameras and range (legal hold)"),
    h("h2", { text: "Exports from this session" }),
    jobsBox);

  let gone = false;
  const timers = new Set();

  const now = new Date();
  end.value = localDateTimeInput(now);
  start.value = localDateTimeInput(new Date(now.getTime() - 15 * 60000));
  if (ctx.params.get("start")) start.value = ctx.params.get("start");
  if (ctx.params.get("end")) end.value = ctx.params.get("end");

  /** The redaction editor's frames follow the chosen cameras and the range. */
  const showFrame = () => {
    const cams = [...camBox.querySelectorAll("input:checked")].map((b) => ({ id: b.value, name: b.parentElement.textContent.trim() }));
    redact.show(cams, start.value ? fromInput(start.value) : null, end.value ? fromInput(end.value) : null);
  };
  camBox.addEventListener("change", showFrame);
  start.addEventListener("change", showFrame);
  end.addEventListener("change", showFrame);

  api("GET", "/api/cameras").then((r) => {
    if (gone) return;
    // From playback's marks: every camera shown (`cameras`), else one (`camera`).
    const want = new Set((ctx.params.get("cameras") || ctx.params.get("camera") || "").split(",").filter(Boolean));
    fill(camBox, r.cameras.map((c) => h("label", {},
      h("input", { type: "checkbox", name: "camera", value: c.id, checked: r.cameras.length === 1 || want.has(c.id) }), ` ${c.name}`)));
    showFrame();
  }, (e) => { err.textContent = `Could not load cameras: ${e.message}`; });

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    err.textContent = "";
    const cameras = [...camBox.querySelectorAll("input:checked")].map((b) => b.value);
    if (!cameras.length) { err.textContent = "Choose at least one camera."; return; }
    if (!start.value || !end.value) { err.textContent = "Give the start and end of the range."; return; }
    const s = fromInput(start.value);
    const e = fromInput(end.value);
    if (!(e > s)) { err.textContent = "The end must be after the start."; end.focus(); return; }
    if (!reason.value.trim()) { err.textContent = "Give a reason for the export."; reason.focus(); return; }
    if (!recipient.value.trim()) { err.textContent = "Say who receives the footage."; recipient.focus(); return; }
    let redaction = null;
    if (redact.enabled()) {
      try { redaction = redact.value(); } catch (x) { err.textContent = x.message; return; }
    }
    submit.disabled = true;
    try {
      const body = {
        cameras, start: s.toISOString(), end: e.toISOString(), reason: reason.value.trim(),
        recipient: recipient.value.trim(), reference: reference.value.trim(), legal_basis: basis.value.trim(),
      };
      if (received.value) body.request_received = received.value;
      if (redaction) body.redact = redaction;
      const job = await api("POST", "/api/exports", body);
      const names = cameras.map((id) => camBox.querySelector(`input[value="${CSS.escape(id)}"]`)?.parentElement.textContent.trim() || id);
      remember(job.id, { names, start: s, end: e });
      track(job.id, { names, start: s, end: e });
      ctx.notify("Export started.", "ok");
    } catch (x) {
      err.textContent = x.message;
    } finally {
      submit.disabled = false;
    }
  });

  // Jobs started in this browser tab, so they survive moving between pages.
  // Only ids and what was asked for: nothing secret.
  const KEY = "cleannvr.exports";
  const saved = () => { try { return JSON.parse(sessionStorage.getItem(KEY)) || []; } catch { return []; } };
  function remember(id, what) {
    const list = saved().filter((j) => j.id !== id);
    list.unshift({ id, names: what.names, start: what.start.getTime(), end: what.end.getTime() });
    try { sessionStorage.setItem(KEY, JSON.stringify(list.slice(0, 20))); } catch { /* storage full or off */ }
  }

  function track(id, what) {
    const status = h("p", { role: "status" }, "Starting…");
    const bar = h("progress", { max: 1, value: 0, "aria-label": "Export progress" });
    const card = h("article", { class: "job", dataset: { export: id } },
      h("h3", { text: `${what.names.join(", ")}: ${dateTime(what.start)} – ${dateTime(what.end)}` }),
      status, bar);
    jobsBox.prepend(card);
    const poll = async () => {
      if (gone) return;
      let j;
      try {
        j = await api("GET", `/api/exports/${seg(id)}`);
      } catch (e) {
        if (e.status === 404) {
          status.textContent = "This export is no longer on the server.";
          bar.remove();
          try { sessionStorage.setItem(KEY, JSON.stringify(saved().filter((x) => x.id !== id))); } catch { /* ignore */ }
          return;
        }
        status.textContent = `Could not get the export's status: ${e.message}`;
        schedule();
        return;
      }
      if (j.status === "running") {
        const p = j.progress || {};
        if (p.bytes_total) {
          bar.max = p.bytes_total;
          bar.value = p.bytes_done;
          status.textContent = `Copying: ${bytes(p.bytes_done)} of ${bytes(p.bytes_total)}`;
        } else status.textContent = "Preparing…";
        schedule();
      } else if (j.status === "done") {
        card.classList.add("done");
        bar.remove();
        fill(status, "Done. Manifest SHA-256 (recorded in the audit log): ", h("span", { class: "sha", text: j.manifest_sha256 }));
        const fp = j.manifest && j.manifest.signing_key_fingerprint;
        if (fp) {
          card.append(h("p", { class: "signed" }, "Signed with this server's Ed25519 key, fingerprint ",
            h("code", { class: "fingerprint", text: fp.match(/.{1,4}/g).join(" ") }),
            ". Whoever receives the export checks it with “cleannvr export verify DIR --key FINGERPRINT” or the package's player.html."));
        }
        const cams = (j.manifest && j.manifest.cameras) || [];
        for (const c of cams) {
          if (!c.files.length) card.append(h("p", { class: "warn-text", text: `${c.name}: nothing recorded in this range.` }));
          else if (c.gaps && c.gaps.length) card.append(h("p", { class: "muted", text: `${c.name}: ${c.gaps.length} gap${c.gaps.length === 1 ? "" : "s"} in the recording (listed in the manifest).` }));
        }
        card.append(h("ul", {}, j.files.map((f) => h("li", {},
          h("a", { href: f.url, download: f.file, text: f.file }),
          f.bytes !== undefined ? ` ${bytes(f.bytes)}` : "",
          f.sha256 ? h("div", { class: "sha", text: `SHA-256 ${f.sha256}` }) : null))));
        card.append(holdControl(ctx, () => ({ export: id }), "Hold this export and its footage (legal hold)"));
      } else {
        card.classList.add("failed");
        bar.remove();
        status.textContent = `Failed: ${j.error || "unknown error"}`;
      }
    };
    const schedule = () => {
      const t = setTimeout(() => { timers.delete(t); poll(); }, POLL_MS);
      timers.add(t);
    };
    poll();
  }

  for (const j of saved().reverse()) track(j.id, { names: j.names, start: new Date(j.start), end: new Date(j.end) });

  return () => {
    gone = true;
    redact.dispose();
    for (const t of timers) clearTimeout(t);
  };
}
