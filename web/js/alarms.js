// The alarm bell in the header (operators and admins): how many alarms are
// active and not yet acknowledged, and on click the list with an
// "Acknowledge" button each. Polled every 15 s; stopped at logout.

import { api, seg } from "./api.js";
import { $, h, fill } from "./dom.js";
import { dateTime } from "./format.js";

const POLL_MS = 15000;
let timer = null;
let last = [];

function render() {
  const active = last.filter((a) => a.active);
  const open = active.filter((a) => !a.acked_by).length;
  const bell = $("#bell");
  $("#bell-count").textContent = String(open);
  bell.classList.toggle("alarming", open > 0);
  bell.setAttribute("aria-label", `Alarms: ${open} not acknowledged`);
  const panel = $("#bell-panel");
  if (panel.hidden) return;
  fill(panel, h("h2", { text: "Alarms" }),
    active.length ? h("ul", { class: "alarm-list" }, active.map((a) => h("li", { class: a.acked_by ? "acked" : "open" },
      h("span", { class: "alarm-msg", text: a.message }),
      h("span", { class: "muted", text: ` since ${dateTime(new Date(a.raised))}` }),
      a.acked_by ? h("span", { class: "muted", text: ` · acknowledged by ${a.acked_by}` })
        : h("button", { type: "button", class: "quiet alarm-ack", text: "Acknowledge", onclick: () => ack(a.id) }))))
      : h("p", { class: "muted", text: "No active alarms." }));
}

async function poll() {
  try {
    last = (await api("GET", "/api/alarms?limit=0")).alarms;
    render();
  } catch { /* a 401 shows the login; anything else: try again next time */ }
}

async function ack(id) {
  try {
    await api("POST", `/api/alarms/${seg(id)}/ack`);
  } catch (e) {
    fill($("#bell-panel"), h("p", { class: "error", role: "alert", text: e.message }));
    return;
  }
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
  $("#bell").hidden = true;
  $("#bell-panel").hidden = true;
  $("#bell").setAttribute("aria-expanded", "false");
}

$("#bell").addEventListener("click", () => {
  const panel = $("#bell-panel");
  panel.hidden = !panel.hidden;
  $("#bell").setAttribute("aria-expanded", String(!panel.hidden));
  render();
});
