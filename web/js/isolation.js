// Camera isolation (admins): asks each ONVIF camera for its gateway, DNS,
// NTP servers and protocols, and shows whether it has a possible route to
// the internet. Report only: nothing on the camera is changed.

import { api } from "./api.js";
import { h, fill } from "./dom.js";

const LEVEL_TEXT = { ok: "OK", info: "Note", warning: "Possible route out", unknown: "Unknown" };

function findings(report) {
  return h("ul", { class: "findings" },
    ...report.findings.map((f) =>
      h("li", { class: `finding ${f.level}` },
        h("strong", { text: `${LEVEL_TEXT[f.level] || f.level}: ` }), f.message)));
}

async function check(cam, out, button) {
  button.disabled = true;
  fill(out, h("p", { class: "muted", text: "Asking the camera…" }));
  try {
    const r = await api("GET", `/api/cameras/${encodeURIComponent(cam.id)}/isolation`);
    fill(out,
      h("p", { class: r.route_out ? "warn verdict" : "ok verdict",
        text: r.route_out ? "This camera may be able to reach the internet." : "No route out found." }),
      findings(r.report));
  } catch (e) {
    fill(out, h("p", { class: "error", role: "alert", text: `Could not audit: ${e.message}` }));
  } finally {
    button.disabled = false;
  }
}

export function mount(root) {
  const body = h("div", {}, h("p", { class: "muted", text: "Loading…" }));
  fill(root,
    h("div", { class: "view-head" }, h("h1", { text: "Camera isolation" })),
    h("p", { class: "muted", text: "Cameras should have no default gateway, no DNS and no outside time server. This reads what each ONVIF camera reports; block the camera network at the firewall as well." }),
    body);
  let gone = false;
  api("GET", "/api/cameras").then((c) => {
    if (gone) return;
    const cams = c.cameras.filter((x) => x.onvif);
    if (!cams.length) {
      fill(body, h("p", { class: "muted", text: "No camera is configured by ONVIF (onvif = { host = … } in the config), so there is nothing to audit." }));
      return;
    }
    fill(body, ...cams.map((cam) => {
      const out = h("div", { class: "isolation-result" });
      const button = h("button", { type: "button", text: "Check now" });
      button.addEventListener("click", () => check(cam, out, button));
      return h("section", { class: "isolation-camera" },
        h("h2", { text: cam.name || cam.id }), button, out);
    }));
  }).catch((e) => {
    if (!gone) fill(body, h("p", { class: "error", role: "alert", text: `Could not load cameras: ${e.message}` }));
  });
  return () => { gone = true; };
}
