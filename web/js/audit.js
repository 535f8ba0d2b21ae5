// Audit log (admins): filtered, newest first, paged backwards; and the
// result of checking the hash chain.

import { api, withQuery } from "./api.js";
import { h, fill, field, table } from "./dom.js";
import { dateTime, fromInput, zone } from "./format.js";
import { systemFacts } from "./system.js";

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
  ["alarm_ack", "Alarm acknowledged"],
  ["bookmark_add", "Bookmark added"],
  ["bookmark_delete", "Bookmark deleted"],
  ["backup", "Backup written"],
  ["totp_enable", "Two-step login on"],
  ["totp_disable", "Two-step login off"],
  ["totp_reset", "Two-step login reset"],
  ["recovery_code_used", "Recovery code used"],
];
const actionLabel = new Map(ACTIONS);
/** Actions a person repeats many times in a row (each tile, each reload): shown as one row. */
const REPEATED = new Set(["live_view", "playback"]);
/** Repeats further apart than this start a new row. */
const REPEAT_GAP_MS = 30 * 60e3;

/**
 * Folds repeats into one row each, placed where the newest of them is: a
 * user's live views of any cameras (a wall of tiles or a tour makes dozens,
 * one per camera per visit), and a user's playback of one camera. Any other
 * action ends the runs, so a login or an export between them still shows
 * where it happened. Entries come newest first.
 * → [{first, last, count, targets}] (first = newest; targets in the order seen)
 */
export function collapse(entries) {
  const out = [];
  const open = new Map();
  for (const e of entries) {
    if (!REPEATED.has(e.action)) {
      open.clear();
      out.push({ first: e, last: e, count: 1, targets: [e.target] });
      continue;
    }
    const key = JSON.stringify([e.actor, e.action, e.action === "live_view" ? "" : e.target]);
    const g = open.get(key);
    if (g && Date.parse(g.last.time) - Date.parse(e.time) <= REPEAT_GAP_MS) {
      g.last = e;
      g.count++;
      if (!g.targets.includes(e.target)) g.targets.push(e.target);
    } else {
      const n = { first: e, last: e, count: 1, targets: [e.target] };
      open.set(key, n);
      out.push(n);
    }
  }
  return out;
}

/** One CSV field (RFC 4180), with formula characters defused for spreadsheets. */
function csvField(v) {
  let s = v === null || v === undefined ? "" : String(v);
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

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
  const expand = h("input", { type: "checkbox", id: "audit-expand" });
  const csvBtn = h("button", { type: "button", id: "audit-csv", text: "Download CSV" });
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
    verifyBox, systemFacts(), filters,
    h("div", { class: "buttons audit-tools" },
      h("label", {}, expand, " Show each live view and playback on its own row"), csvBtn),
    err, results, h("p", {}, more));

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
    const iso = (el) => (el.value ? fromInput(el.value).toISOString() : "");
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
    const groups = expand.checked ? rows.map((e) => ({ first: e, last: e, count: 1, targets: [e.target] })) : collapse(rows);
    fill(results, table(`Audit entries, newest first (times in ${zone})`,
      ["#", "Time", "User", "Action", "Target", "Client", "Detail"],
      groups.map(({ first: e, last, count, targets }) => {
        const label = actionLabel.get(e.action) || e.action;
        if (count === 1) {
          return [String(e.seq), dateTime(e.time), e.actor,
            h("span", { class: `action action-${e.action}`, text: label }),
            e.target, e.client, h("span", { class: "detail", text: e.detail })];
        }
        const cams = targets.length === 1 ? "1 camera" : `${targets.length} cameras`;
        const [from, to] = [dateTime(last.time), dateTime(e.time)];
        // The day once, unless the run crosses midnight.
        const until = from.slice(0, 10) === to.slice(0, 10) ? to.slice(11) : to;
        return [`${last.seq}–${e.seq}`, `${from} – ${until}`,
          e.actor,
          h("span", { class: `action action-${e.action}`, text: `${label} ×${count}` }),
          targets.join(", "), e.client,
          h("span", { class: "detail repeat", text: `${count} entries, ${cams}, shown as one row` })];
      }),
      { class: "audit", empty: "No entries match these filters." }));
  }

  /** The entries loaded so far, every one (never collapsed), as CSV. */
  function downloadCsv() {
    const head = ["seq", "time", "user", "action", "target", "client", "detail"];
    const lines = [head.join(",")].concat(rows.map((e) => [e.seq, e.time, e.actor, e.action, e.target, e.client, e.detail].map(csvField).join(",")));
    const url = URL.createObjectURL(new Blob([`${lines.join("\r\n")}\r\n`], { type: "text/csv" }));
    const a = h("a", { href: url, download: `cleannvr-audit-${new Date().toISOString().slice(0, 10)}.csv`, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  filters.addEventListener("submit", (ev) => { ev.preventDefault(); load(false); });
  filters.addEventListener("reset", () => setTimeout(() => load(false), 0));
  more.addEventListener("click", () => load(true));
  expand.addEventListener("change", render);
  csvBtn.addEventListener("click", downloadCsv);
  verify();
  load(false);
  return () => { gone = true; };
}
