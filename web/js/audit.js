// Audit log (admins): filtered, newest first, paged backwards; and the
// result of checking the hash chain.

import { api, withQuery } from "./api.js";
import { h, fill, field, table } from "./dom.js";
import { dateTime, zone } from "./format.js";

const ACTIONS = [
  ["", "Any action"],
  ["login", "Logged in"],
  ["login_failed", "Failed login"],
  ["logout", "Logged out"],
  ["live_view", "Live view"],
  ["playback", "Playback"],
  ["export", "Export"],
  ["user_add", "User added"],
  ["user_update", "User changed"],
  ["user_remove", "User removed"],
  ["camera_change", "Camera changed"],
  ["snapshot", "Snapshot"],
  ["export_download", "Export downloaded"],
  ["retention_delete", "Footage deleted by retention"],
  ["export_expire", "Export expired"],
  ["hold_create", "Legal hold placed"],
  ["hold_release", "Legal hold released"],
  ["backup", "Backup written"],
  ["totp_enable", "Two-step login on"],
  ["totp_disable", "Two-step login off"],
  ["totp_reset", "Two-step login reset"],
  ["recovery_code_used", "Recovery code used"],
];
const actionLabel = new Map(ACTIONS);

export function mount(root, ctx) {
  const verifyBox = h("div", { class: "verify", role: "status", "aria-live": "polite" }, "Checking the audit chain…");
  const actor = h("input", { name: "actor", autocomplete: "off", spellcheck: "false" });
  const action = h("select", { name: "action" }, ACTIONS.map(([v, t]) => h("option", { value: v, text: t })));
  const target = h("input", { name: "target", autocomplete: "off", spellcheck: "false" });
  const since = h("input", { type: "datetime-local", name: "since" });
  const until = h("input", { type: "datetime-local", name: "until" });
  const limit = h("select", { name: "limit" }, ["50", "100", "250", "1000"].map((v) => h("option", { value: v, selected: v === "100", text: v })));
  const filters = h("form", { class: "filters", "aria-label": "Filter the audit log" },
    field("User", actor), field("Action", action), field("Camera or target", target),
    field(`From (${zone})`, since), field("Until", until), field("Per page", limit),
    h("div", { class: "buttons" },
      h("button", { type: "submit", class: "primary", text: "Apply" }),
      h("button", { type: "reset", class: "quiet", text: "Clear" })));
  const results = h("div", { id: "audit-results" });
  const more = h("button", { type: "button", class: "quiet", hidden: true, text: "Older entries" });
  const err = h("p", { class: "error", role: "alert" });
  let gone = false;
  let nextBefore = null;
  let rows = [];

  for (const [k, v] of ctx.params) {
    const el = { actor, action, target }[k];
    if (el) el.value = v;
  }

  fill(root,
    h("div", { class: "view-head" }, h("h1", { text: "Audit log" })),
    verifyBox, filters, err, results, h("p", {}, more));

  async function verify() {
    try {
      const v = await api("GET", "/api/audit/verify");
      if (gone) return;
      verifyBox.className = `verify ${v.ok ? "ok" : "bad"}`;
      fill(verifyBox,
        v.ok
          ? `Audit chain intact: ${v.verified} entries checked, each linked to the one before.`
          : `Audit chain BROKEN at entry ${v.broken.seq}: ${v.broken.reason}. ${v.verified} entries before it check out. Preserve this server's data and investigate.`,
        " ",
        h("button", { type: "button", class: "quiet", text: "Check again", onclick: verify }));
    } catch (e) {
      if (!gone) verifyBox.textContent = `Could not check the chain: ${e.message}`;
    }
  }

  function query(before) {
    const iso = (el) => (el.value ? new Date(el.value).toISOString() : "");
    return withQuery("/api/audit", {
      actor: actor.value.trim(), action: action.value, target: target.value.trim(),
      since: iso(since), until: iso(until), limit: limit.value, before,
    });
  }

  async function load(append) {
    err.textContent = "";
    try {
      const r = await api("GET", query(append ? nextBefore : null));
      if (gone) return;
      rows = append ? rows.concat(r.entries) : r.entries;
      nextBefore = r.next_before;
      more.hidden = nextBefore === null || nextBefore === undefined;
      render();
    } catch (e) {
      if (!gone) err.textContent = `Could not load the audit log: ${e.message}`;
    }
  }

  function render() {
    fill(results, table(`Audit entries, newest first (times in ${zone})`,
      ["#", "Time", "User", "Action", "Target", "Client", "Detail"],
      rows.map((e) => [
        String(e.seq), dateTime(e.time), e.actor,
        h("span", { class: `action action-${e.action}`, text: actionLabel.get(e.action) || e.action }),
        e.target, e.client, h("span", { class: "detail", text: e.detail }),
      ]),
      { class: "audit", empty: "No entries match these filters." }));
  }

  filters.addEventListener("submit", (ev) => { ev.preventDefault(); load(false); });
  filters.addEventListener("reset", () => setTimeout(() => load(false), 0));
  more.addEventListener("click", () => load(true));
  verify();
  load(false);
  return () => { gone = true; };
}
