// Placeholder UI: log in, list cameras. The real UI is its own piece of work.
// No inline script (the CSP forbids it) and no third-party code.
"use strict";

let csrf = null;
const $ = (s) => document.querySelector(s);

async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (csrf && method !== "GET") headers["X-CSRF-Token"] = csrf;
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
  const data = r.status === 204 ? null : await r.json().catch(() => null);
  if (!r.ok) throw Object.assign(new Error((data && data.detail) || r.statusText), { status: r.status });
  return data;
}

function showLogin() {
  $("#login").hidden = false;
  $("#cameras").hidden = true;
  $("#logout").hidden = true;
  $("#who").textContent = "";
}

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  return td;
}

async function showCameras(me) {
  csrf = me.csrf_token;
  $("#who").textContent = me.user.name + " (" + me.user.role + ")";
  $("#login").hidden = true;
  $("#logout").hidden = false;
  $("#cameras").hidden = false;
  const { cameras } = await api("GET", "/api/cameras");
  const tbody = $("#cameras tbody");
  tbody.replaceChildren();
  for (const c of cameras) {
    const tr = document.createElement("tr");
    const res = c.resolution ? c.resolution.width + "x" + c.resolution.height : "";
    const mib = (c.recorded_bytes / 1048576).toFixed(1) + " MiB";
    for (const v of [c.name, c.state, c.codec, res, c.fps.toFixed(1), mib, c.oldest, c.newest, c.last_error]) tr.append(cell(v));
    tbody.append(tr);
  }
}

$("#login").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  try {
    const me = await api("POST", "/api/login", { username: f.get("username"), password: f.get("password") });
    ev.target.reset();
    $("#login-error").textContent = "";
    await showCameras(me);
  } catch (e) {
    $("#login-error").textContent = e.message;
  }
});

$("#logout").addEventListener("click", async () => {
  try { await api("POST", "/api/logout"); } finally { csrf = null; showLogin(); }
});

api("GET", "/api/me").then(showCameras, showLogin);
setInterval(() => { if (csrf) api("GET", "/api/me").then(showCameras, showLogin); }, 10000);
