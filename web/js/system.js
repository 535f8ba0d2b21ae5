// What an administrator vouches for this server's exports with (GET /api/system):
// the Ed25519 key that signs exports and audit checkpoints, by fingerprint (to
// read out or send to whoever checks a package: `cleannvr export verify DIR
// --key FINGERPRINT`), the time zone of every time shown, and the clock's state.

import { api } from "./api.js";
import { h, fill } from "./dom.js";
import { dateTime, zone, zoneAbbr } from "./format.js";

/** A panel that fills itself from GET /api/system (admins). */
export function systemFacts() {
  const box = h("section", { id: "system-facts", class: "panel facts-panel", "aria-labelledby": "system-facts-title" },
    h("h2", { id: "system-facts-title", text: "Signing key and clock" }),
    h("p", { class: "muted", text: "Loading…" }));
  api("GET", "/api/system").then((s) => {
    const k = s.signing_key || {};
    const c = s.clock;
    fill(box,
      h("h2", { id: "system-facts-title", text: "Signing key and clock" }),
      h("dl", { class: "facts" },
        h("div", {}, h("dt", { text: "Export signing key (Ed25519) fingerprint" }),
          h("dd", {}, k.fingerprint
            ? h("code", { id: "signing-fingerprint", class: "fingerprint", text: k.fingerprint_grouped || k.fingerprint })
            : h("span", { class: "error", text: `No signing key: ${k.error || "unknown"}` }))),
        h("div", {}, h("dt", { text: "Time zone of every time shown" }),
          h("dd", { id: "server-zone", text: `${s.time_zone || zone} (now ${zoneAbbr(new Date())})` })),
        h("div", {}, h("dt", { text: "Server clock" }),
          h("dd", { text: `${dateTime(new Date())}; ${c ? (c.ntp_synchronised ? "NTP-synchronised" : "NOT synchronised to NTP") : "synchronisation unknown"}` })),
        h("div", {}, h("dt", { text: "Server" }), h("dd", { text: `${s.server_name || ""} · cleannvr ${s.version}` }))),
      h("p", { class: "hint", text: "Give this fingerprint to whoever receives an export; “cleannvr export verify DIR --key FINGERPRINT” and the package's player.html check every package against it. The same key signs the audit log's checkpoints." }));
  }, (e) => fill(box, h("p", { class: "error", text: `Could not load the server's facts: ${e.message}` })));
  return box;
}
