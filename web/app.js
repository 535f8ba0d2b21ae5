// cleannvr operator UI: session handling and the view router.
// ES modules only; no inline script or style (the server's CSP forbids
// both) and nothing from any other origin.

import { api, setCsrf, onSessionExpired } from "./js/api.js";
import { $, $$, h, fill } from "./js/dom.js";
import { startBell, stopBell } from "./js/alarms.js";
import { initNav, fitNav, markCurrent } from "./js/nav.js";
import { setZone } from "./js/format.js";

const views = {
  live: { load: () => import("./js/live.js"), title: "Live" },
  playback: { load: () => import("./js/playback.js"), title: "Playback" },
  events: { load: () => import("./js/events.js"), title: "Camera events" },
  export: { load: () => import("./js/export.js"), title: "Export", role: "operator" },
  holds: { load: () => import("./js/holds.js"), title: "Legal holds", role: "operator" },
  cameras: { load: () => import("./js/cameras.js"), title: "Cameras", role: "operator" },
  "camera-setup": { load: () => import("./js/camera_admin.js"), title: "Camera setup", role: "admin" },
  users: { load: () => import("./js/users.js"), title: "Users", role: "admin" },
  audit: { load: () => import("./js/audit.js"), title: "Audit log", role: "admin" },
  disclosures: { load: () => import("./js/disclosures.js"), title: "Disclosures", role: "admin" },
  report: { load: () => import("./js/report.js"), title: "Report", role: "admin" },
  storage: { load: () => import("./js/storage.js"), title: "Storage", role: "admin" },
  isolation: { load: () => import("./js/isolation.js"), title: "Camera isolation", role: "admin" },
  account: { load: () => import("./js/account.js"), title: "Your account" },
};

const rank = { viewer: 0, operator: 1, admin: 2 };
const allowed = (role, need) => !need || rank[role] >= rank[need];

let me = null;
// An admin who must set up two-step login first ([auth] require_totp_for_admins)
// sees only the account page until it is done; the server refuses the rest.
let mustEnrol = false;
let unmount = null;
let routeSeq = 0;

/** Shows a short message at the top (not an alert: polite status). */
export function notify(text, kind = "info") {
  const n = $("#notice");
  n.textContent = text || "";
  n.className = `notice ${kind}`;
  n.hidden = !text;
}

function stopView() {
  if (unmount) {
    try { unmount(); } catch (e) { console.warn("unmount", e); }
    unmount = null;
  }
  fill($("#view"));
}

function showLogin(message) {
  stopView();
  me = null;
  stopBell();
  setCsrf(null);
  document.body.dataset.state = "login";
  $("#nav").hidden = true;
  $("#session").hidden = true;
  $("#setup-view").hidden = true;
  $("#login-view").hidden = false;
  $("#login-error").textContent = message || "";
  $("#login-code-wrap").hidden = true;
  $("#login-code").value = "";
  document.title = "Log in · cleannvr";
  $("#login-user").focus();
}

/** The first-run form: no admin exists yet (`GET /api/setup`). */
function showSetup(status, message) {
  stopView();
  me = null;
  setCsrf(null);
  document.body.dataset.state = "setup";
  $("#nav").hidden = true;
  $("#session").hidden = true;
  $("#login-view").hidden = true;
  $("#setup-view").hidden = false;
  const expired = !status.code_valid_until;
  $("#setup-error").textContent = message
    || (expired ? "The setup code has been used or has expired. Restart cleannvr: it logs a new one." : "");
  document.title = "Set up · cleannvr";
  $("#setup-code").focus();
}

async function setup(ev) {
  ev.preventDefault();
  const form = ev.target;
  const err = $("#setup-error");
  const code = form.code.value.trim();
  const username = form.username.value.trim();
  const password = form.password.value;
  if (!code || !username || !password) {
    err.textContent = "Enter the setup code, a user name and a password.";
    return;
  }
  if (password.length < 8) {
    err.textContent = "The password must be at least 8 characters.";
    form.password.focus();
    return;
  }
  if (password !== form.password2.value) {
    err.textContent = "The two passwords differ.";
    form.password2.value = "";
    form.password2.focus();
    return;
  }
  const btn = form.querySelector("button");
  btn.disabled = true;
  err.textContent = "";
  try {
    const session = await api("POST", "/api/setup", { code, username, password }, { noExpiry: true });
    form.reset();
    $("#setup-view").hidden = true;
    showApp(session);
    notify(`Administrator ${session.user.name} created. Add other users under Users.`, "ok");
    $("#main").focus();
  } catch (e) {
    if (e.status === 409) {
      $("#setup-view").hidden = true;
      showLogin("Setup is already done. Log in.");
      return;
    }
    if (e.status === 429) err.textContent = `Too many wrong codes. Try again in ${e.retryAfter || "a few"} seconds.`;
    else if (e.status === 403) {
      err.textContent = /wrong/.test(e.message) ? "Wrong setup code. Copy it again from the server log."
        : `${e.message.charAt(0).toUpperCase()}${e.message.slice(1)}.`;
      form.code.focus();
    } else err.textContent = e.message;
  } finally {
    btn.disabled = false;
  }
}

function showApp(session) {
  me = session.user;
  // Times are shown and read in the server's zone (before any view mounts).
  setZone(session.time_zone);
  mustEnrol = !!session.totp_enrolment_required;
  setCsrf(session.csrf_token);
  document.body.dataset.state = "app";
  document.body.dataset.role = me.role;
  $("#login-view").hidden = true;
  $("#setup-view").hidden = true;
  $("#session").hidden = false;
  fill($("#who"), h("span", { class: "user", text: me.name }), " ", h("span", { class: `role role-${me.role}`, text: me.role }));
  for (const a of $$("#nav a")) a.parentElement.hidden = !allowed(me.role, a.dataset.role) || (mustEnrol && a.dataset.view !== "account");
  $("#nav").hidden = false;
  fitNav();
  if (allowed(me.role, "operator") && !mustEnrol) startBell(); else stopBell();
  route();
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [name, query] = raw.split("?");
  return { name: name || "live", params: new URLSearchParams(query || "") };
}

async function route() {
  if (!me) return;
  const seq = ++routeSeq;
  let { name, params } = parseHash();
  if (mustEnrol && name !== "account") {
    name = "account";
    history.replaceState(null, "", "#/account");
  }
  const view = views[name];
  stopView();
  notify("");
  for (const a of $$("#nav a")) {
    if (a.dataset.view === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  markCurrent();
  const root = $("#view");
  if (!view) {
    fill(root, h("h1", { text: "Not found" }), h("p", {}, "There is no such page. ", h("a", { href: "#/live", text: "Go to Live" })));
    return;
  }
  document.title = `${view.title} · cleannvr`;
  if (!allowed(me.role, view.role)) {
    fill(root, h("h1", { text: view.title }),
      h("p", { class: "error", role: "alert", text: `This page is for ${view.role === "admin" ? "administrators" : "operators and administrators"} only.` }));
    return;
  }
  let mod;
  try {
    mod = await view.load();
  } catch (e) {
    fill(root, h("p", { class: "error", role: "alert", text: `Could not load this page: ${e.message}` }));
    return;
  }
  if (seq !== routeSeq || !me) return;
  unmount = mod.mount(root, { me, params, notify, accountChanged }) || null;
}

/** After a change to the caller's own account: fetch who they are again. */
async function accountChanged() {
  try {
    showApp(await api("GET", "/api/me"));
  } catch { /* a 401 shows the login */ }
}

async function login(ev) {
  ev.preventDefault();
  const form = ev.target;
  const username = form.username.value.trim();
  const password = form.password.value;
  const err = $("#login-error");
  const codeWrap = $("#login-code-wrap");
  const code = codeWrap.hidden ? "" : form.code.value.replace(/\s+/g, "");
  if (!username || !password) {
    err.textContent = "Enter your user name and password.";
    return;
  }
  if (!codeWrap.hidden && !code) {
    err.textContent = "Enter the code from your authenticator app.";
    form.code.focus();
    return;
  }
  const body = { username, password };
  // Six digits is an app code; anything else is a recovery code.
  if (code) body[/^[0-9]{6}$/.test(code) ? "totp_code" : "recovery_code"] = code;
  const btn = form.querySelector("button");
  btn.disabled = true;
  err.textContent = "";
  try {
    const session = await api("POST", "/api/login", body, { noExpiry: true });
    form.reset();
    codeWrap.hidden = true;
    showApp(session);
    $("#main").focus();
  } catch (e) {
    if (e.status === 401 && e.kind === "totp_required") {
      // The password was right: keep it and ask for the second factor.
      codeWrap.hidden = false;
      err.textContent = "Enter the 6-digit code from your authenticator app, or a recovery code.";
      form.code.focus();
      return;
    }
    if (e.status === 401 && e.kind === "totp_invalid") {
      form.code.value = "";
      err.textContent = "That code is wrong or was already used. Wait for the next code and try again.";
      form.code.focus();
      return;
    }
    form.password.value = "";
    form.code.value = "";
    codeWrap.hidden = true;
    if (e.status === 401) err.textContent = "Wrong user name or password.";
    else if (e.status === 429) err.textContent = `Too many failed attempts. Try again in ${e.retryAfter || "a few"} seconds.`;
    else err.textContent = e.message;
    form.password.focus();
  } finally {
    btn.disabled = false;
  }
}

async function logout() {
  try {
    await api("POST", "/api/logout");
  } catch { /* the session may already be gone */ }
  showLogin("You have logged out.");
}

onSessionExpired(() => {
  if (me) showLogin("Your session has ended. Log in again.");
});

initNav();
$("#login").addEventListener("submit", login);
$("#setup").addEventListener("submit", setup);
$("#logout").addEventListener("click", logout);
window.addEventListener("hashchange", route);

// Single sign-on ([oidc]): the button, and why the provider's return was refused
// (the server sends the browser back to `/?sso_error=CODE`).
const ssoMessages = {
  no_role: (l) => `You signed in with ${l}, but you are not in any group that may use cleannvr. Ask your administrator to add you to one.`,
  state: () => "That sign-in could not be checked: it expired or was not started from this page. Try again.",
  provider: (l) => `${l} could not complete the sign-in. Try again; if it keeps failing, cleannvr's log says why.`,
  name: (l) => `The user name ${l} gave cannot be used in cleannvr. Ask your administrator.`,
  taken: (l) => `The user name ${l} gave belongs to another cleannvr account. Ask your administrator.`,
};
const ssoError = new URLSearchParams(location.search).get("sso_error");
if (ssoError) history.replaceState(null, "", location.pathname + location.hash);
let ssoLabel = "single sign-on";
const ssoReady = api("GET", "/api/oidc", undefined, { noExpiry: true }).then((s) => {
  const link = $("#sso-login");
  if (s && s.enabled) {
    ssoLabel = s.label;
    link.textContent = `Sign in with ${s.label}`;
    link.hidden = false;
  }
}, () => {});

// `/api/session` answers 200 either way, so a logged-out load logs no failed request.
api("GET", "/api/session", undefined, { noExpiry: true }).then(async (session) => {
  if (session && session.user) { showApp(session); return; }
  // Not logged in: a fresh server shows its setup form instead of a login nobody can pass.
  const status = await api("GET", "/api/setup", undefined, { noExpiry: true }).catch(() => null);
  await ssoReady;
  if (status && status.required) showSetup(status);
  else showLogin(ssoError ? (ssoMessages[ssoError] || ssoMessages.provider)(ssoLabel) : "");
}, () => showLogin(""));
