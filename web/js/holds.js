// Legal holds (evidence locks): footage of some cameras over a time range, or an
// export, that retention must keep. Operators and admins place holds with a reason
// (and an optional end); only admins release them, again with a reason. Both are
// recorded in the audit log.

import { api, seg } from "./api.js";
import { h, fill, field, table } from "./dom.js";
import { dateTime, fromInput, zone } from "./format.js";

/**
 * A "Place a legal hold" control. `target()` returns what to hold
 * (`{cameras, start, end}` as Dates, and/or `{export}`), or a string saying what is missing;
 * `placed(hold)` is called with the server's answer once it is held.
 */
export function holdControl(ctx, target, label = "Place a legal hold", placed = () => {}) {
  const reason = h("input", { name: "hold-reason", class: "hold-reason", maxlength: 500, autocomplete: "off" });
  const until = h("input", { type: "datetime-local", name: "hold-until", class: "hold-until", step: 1 });
  const msg = h("p", { role: "status", class: "hold-msg" });
  const go = h("button", { type: "button", class: "hold-go", text: "Hold" });
  const box = h("details", { class: "hold panel" },
    h("summary", { text: label }),
    h("p", { class: "muted", text: "Held footage is never deleted by retention until an administrator releases the hold or its end date passes." }),
    field("Reason", reason, "Required: a case or incident reference. Recorded in the audit log."),
    field(`Hold until (${zone}, optional)`, until),
    h("div", { class: "buttons" }, go), msg);
  go.addEventListener("click", async () => {
    msg.textContent = "";
    msg.className = "hold-msg";
    const t = target();
    if (typeof t === "string") { msg.textContent = t; msg.classList.add("error"); return; }
    if (!reason.value.trim()) { msg.textContent = "Give a reason for the hold."; msg.classList.add("error"); reason.focus(); return; }
    const body = { reason: reason.value.trim() };
    if (t.cameras) Object.assign(body, { cameras: t.cameras, start: t.start.toISOString(), end: t.end.toISOString() });
    if (t.export) body.export = t.export;
    if (until.value) body.until = fromInput(until.value).toISOString();
    go.disabled = true;
    try {
      const r = await api("POST", "/api/holds", body);
      msg.textContent = `Held (hold ${r.id.slice(0, 8)}). See Legal holds for the list.`;
      msg.classList.add("ok");
      ctx.notify("Legal hold placed.", "ok");
      placed(r);
    } catch (e) {
      msg.textContent = e.message;
      msg.classList.add("error");
    } finally {
      go.disabled = false;
    }
  });
  return box;
}

/** The "Legal holds" page: every hold the user may see; admins can release. */
export function mount(root, ctx) {
  const body = h("div", {}, h("p", { class: "muted", text: "Loading…" }));
  fill(root,
    h("div", { class: "view-head" }, h("h1", { text: "Legal holds" })),
    h("p", { class: "muted", text: "Footage and exports under a hold are kept whatever the retention limits say. Place holds from the Playback and Export pages." }),
    body);
  let gone = false;
  const admin = ctx.me.role === "admin";

  function releaseCell(hold) {
    if (!admin) return "";
    const why = h("input", { name: "release-reason", "aria-label": "Reason for release", placeholder: "Reason for release", maxlength: 500 });
    const btn = h("button", { type: "button", class: "release", text: "Release" });
    btn.addEventListener("click", async () => {
      if (!why.value.trim()) { why.focus(); ctx.notify("Give a reason for releasing the hold.", "error"); return; }
      btn.disabled = true;
      try {
        await api("DELETE", `/api/holds/${seg(hold.id)}`, { reason: why.value.trim() });
        ctx.notify("Hold released: its footage is subject to retention again.", "ok");
        load();
      } catch (e) {
        ctx.notify(e.message, "error");
        btn.disabled = false;
      }
    });
    return h("div", { class: "release-box" }, why, btn);
  }

  async function load() {
    try {
      const r = await api("GET", "/api/holds");
      if (gone) return;
      fill(body, table("Holds", ["Cameras", "From", "To", "Reason", "By", "Placed", "Until", "State", ""],
        r.holds.map((x) => [
          x.cameras.join(", ") + (x.export ? ` (export ${x.export.slice(0, 8)})` : ""),
          dateTime(x.start),
          dateTime(x.end),
          x.reason,
          x.created_by,
          dateTime(x.created),
          x.until ? dateTime(x.until) : "until released",
          x.active ? "in force" : "expired",
          releaseCell(x),
        ]), { empty: "No legal holds." }));
    } catch (e) {
      if (!gone) fill(body, h("p", { class: "error", role: "alert", text: `Could not load holds: ${e.message}` }));
    }
  }
  load();
  return () => { gone = true; };
}
