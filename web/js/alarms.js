// The alarm bell in the header (operators and admins): how many active alarms
// the person logged in has not acknowledged, and on click the list. Each
// operator acknowledges for themselves, with an optional note: an alarm
// another operator acknowledged stays prominent (and counted) until you do,
// and every alarm says who acknowledged it when, with their notes. Polled
// every 15 s; stopped at logout.

import { api, seg } from "./api.js";
import { $, h, fill } from "./dom.js";
import { dateTime } from "./format.js";

const POLL_MS = 15000;
let timer = null;
let last = [];
let unacked = 0;
let shown = "";
/** Alarm id -> the note being typed, kept across the polls' redraws. */
const drafts = new Map();

function render() {
  const active = last.filter((a) => a.active);
  const bell = $("#bell");
  $("#bell-count").textContent = String(unacked);
  bell.classList.toggle("alarming", unacked > 0);
  bell.setAttribute("aria-label", `Alarms: ${unacked} not acknowledged by you`);
  const panel = $("#bell-panel");
  if (panel.hidden) { shown = ""; return; }
  // Redrawn only when something changed, so a note being typed keeps its focus.
  const key = JSON.stringify(active);
  if (key === shown) return;
  shown = key;
  const focused = document.activeElement && document.activeElement.dataset.alarm;
  fill(panel, h("h2", { text: "Alarms" }),
    active.length ? h("ul", { class: "alarm-list" }, active.map(item))
      : h("p", { class: "muted", text: "No active alarms." }));
  if (focused) panel.querySelector(`.alarm-note[data-alarm="${CSS.escape(focused)}"]`)?.focus();
}

/** One alarm: prominent until the person logged in has acknowledged it. */
function item(a) {
  const acks = a.acks || [];
  const who = acks.length ? h("ul", { class: "alarm-acks" }, acks.map((k) => h("li", { dataset: { user: k.user } },
    h("span", { text: `Acknowledged by ${k.user} at ${dateTime(new Date(k.at))}` }),
    k.note ? h("q", { class: "alarm-ack-note", text: k.note }) : null))) : null;
  let form = null;
  if (!a.acked_by_me) {
    const note = h("input", {
      type: "text", class: "alarm-note", maxlength: 500, placeholder: "Note (optional)",
      "aria-label": `Note on acknowledging: ${a.message}`, dataset: { alarm: a.id }, value: drafts.get(a.id) || "",
    });
    note.addEventListener("input", () => drafts.set(a.id, note.value));
    form = h("form", { class: "alarm-ack-form" }, note,
      h("button", { type: "submit", class: "quiet alarm-ack", text: "Acknowledge" }));
    form.addEventListener("submit", (ev) => { ev.preventDefault(); ack(a.id, note.value); });
  }
  return h("li", { class: a.acked_by_me ? "acked" : "open", dataset: { alarm: a.id } },
    h("span", { class: "alarm-msg", text: a.message }),
    h("span", { class: "muted", text: ` since ${dateTime(new Date(a.raised))}` }),
    a.acked_by_me ? h("span", { class: "muted", text: " · acknowledged by you" })
      : acks.length ? h("span", { class: "alarm-others", text: " · not yet by you" }) : null,
    who, form);
}

async function poll() {
  try {
    const r = await api("GET", "/api/alarms?limit=0");
    last = r.alarms;
    unacked = r.unacknowledged;
    render();
  } catch { /* a 401 shows the login; anything else: try again next time */ }
}

async function ack(id, note) {
  try {
    await api("POST", `/api/alarms/${seg(id)}/ack`, { note });
  } catch (e) {
    shown = "";
    fill($("#bell-panel"), h("p", { class: "error", role: "alert", text: e.message }));
    return;
  }
  drafts.delete(id);
  poll();
}

/** Shows the bell and starts polling. */
export function startBell() {
  stopBell();
  $("#bell").hidden = false;
  poll();
  timer = setInterval(poll, POLL_MS);
}

/** Hides the bell and stops polling. */
export function stopBell() {
  if (timer) clearInterval(timer);
  timer = null;
  last = [];
  unacked = 0;
  shown = "";
  drafts.clear();
  $("#bell").hidden = true;
  $("#bell-panel").hidden = true;
  $("#bell").setAttribute("aria-expanded", "false");
}

$("#bell").addEventListener("click", () => {
  const panel = $("#bell-panel");
  panel.hidden = !panel.hidden;
  $("#bell").setAttribute("aria-expanded", String(!panel.hidden));
  shown = "";
  render();
});
