// The caller's own account: two-step login (TOTP). Setting it up shows a QR
// code the server drew (an SVG shown as an image: no markup is inserted),
// the secret for typing in by hand, then the recovery codes, once. The
// password and codes go from the form to the API and are cleared at once.

import { api } from "./api.js";
import { h, fill, field } from "./dom.js";

export function mount(root, ctx) {
  const body = h("div", {}, h("p", { class: "muted", text: "Loading…" }));
  fill(root, h("div", { class: "view-head" }, h("h1", { text: "Your account" })), body);
  let gone = false;
  let qrUrl = null;

  const freeQr = () => { if (qrUrl) URL.revokeObjectURL(qrUrl); qrUrl = null; };

  async function load() {
    try {
      const me = await api("GET", "/api/me");
      if (gone) return;
      render(me);
    } catch (e) {
      if (!gone) fill(body, h("p", { class: "error", role: "alert", text: `Could not load your account: ${e.message}` }));
    }
  }

  function codeInput(name) {
    return h("input", { name, id: `totp-${name}`, inputmode: "numeric", autocomplete: "one-time-code", spellcheck: "false", maxlength: 32, required: true });
  }

  function render(me) {
    freeQr();
    const t = me.totp || {};
    if (t.enabled) {
      fill(body,
        h("p", { id: "totp-status", text: `Two-step login is on. Recovery codes left: ${t.recovery_codes_left}.` }),
        disableForm());
    } else {
      fill(body,
        me.totp_enrolment_required
          ? h("p", { class: "notice error", role: "alert", text: "Administrators must use two-step login here. Set it up to continue." })
          : null,
        h("p", { id: "totp-status", text: "Two-step login is off. With it on, logging in needs a code from an authenticator app on your phone as well as your password." }),
        startForm());
    }
  }

  function startForm() {
    const pw = h("input", { type: "password", name: "password", id: "totp-password", autocomplete: "current-password", required: true });
    const err = h("p", { class: "error", role: "alert" });
    const form = h("form", { class: "panel", id: "totp-start", "aria-labelledby": "totp-start-title" },
      h("h2", { id: "totp-start-title", text: "Set up two-step login" }),
      field("Your password", pw, "Asked again so that nobody at an unlocked screen can do this."),
      h("div", { class: "buttons" }, h("button", { type: "submit", class: "primary", text: "Continue" })),
      err);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const password = pw.value;
      pw.value = "";
      try {
        const e = await api("POST", "/api/me/totp/enrol", { password });
        if (!gone) showSecret(e);
      } catch (e) {
        err.textContent = e.status === 401 ? "Wrong password." : e.status === 429 ? `Too many attempts. Try again in ${e.retryAfter || "a few"} seconds.` : e.message;
      }
    });
    return form;
  }

  function showSecret(e) {
    freeQr();
    qrUrl = URL.createObjectURL(new Blob([e.qr_svg], { type: "image/svg+xml" }));
    const code = codeInput("code");
    const err = h("p", { class: "error", role: "alert" });
    const form = h("form", { class: "panel", id: "totp-confirm", "aria-labelledby": "totp-confirm-title" },
      h("h2", { id: "totp-confirm-title", text: "Scan this code with your authenticator app" }),
      h("img", { id: "totp-qr", class: "qr", src: qrUrl, width: 220, height: 220, alt: "QR code holding your two-step login secret" }),
      h("p", {}, "Or type this key in by hand (time-based, 6 digits, 30 seconds): ",
        h("code", { id: "totp-secret", class: "secret", text: e.secret.replace(/(.{4})/g, "$1 ").trim() })),
      field("Code shown by the app", code, "Proves the app is set up; two-step login is on from then."),
      h("div", { class: "buttons" }, h("button", { type: "submit", class: "primary", text: "Turn on two-step login" })),
      err);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const c = code.value.replace(/\s+/g, "");
      code.value = "";
      try {
        const r = await api("POST", "/api/me/totp/confirm", { code: c });
        if (!gone) showRecovery(r.recovery_codes);
      } catch (e) {
        err.textContent = e.status === 401 ? "That code is not right. Check the phone's clock and try the next code." : e.message;
        code.focus();
      }
    });
    fill(body, form);
    code.focus();
  }

  function showRecovery(codes) {
    freeQr();
    const done = h("button", { type: "button", class: "primary", id: "totp-done", text: "I have saved these codes" });
    done.addEventListener("click", () => ctx.accountChanged ? ctx.accountChanged() : load());
    fill(body,
      h("section", { class: "panel", "aria-labelledby": "totp-rec-title" },
        h("h2", { id: "totp-rec-title", text: "Two-step login is on: save your recovery codes" }),
        h("p", { text: "Each code logs you in once if you lose your phone. They are shown only now: print them or keep them somewhere safe." }),
        h("ol", { id: "totp-recovery", class: "recovery" }, codes.map((c) => h("li", {}, h("code", { text: c })))),
        done));
    done.focus();
  }

  function disableForm() {
    const pw = h("input", { type: "password", name: "password", id: "totp-off-password", autocomplete: "current-password", required: true });
    const code = codeInput("off-code");
    const err = h("p", { class: "error", role: "alert" });
    const form = h("form", { class: "panel", id: "totp-disable", "aria-labelledby": "totp-off-title" },
      h("h2", { id: "totp-off-title", text: "Turn off two-step login" }),
      field("Your password", pw),
      field("Code from the app, or a recovery code", code),
      h("div", { class: "buttons" }, h("button", { type: "submit", class: "danger", text: "Turn off" })),
      err);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const password = pw.value;
      const c = code.value.trim();
      pw.value = "";
      code.value = "";
      const bodyJson = /^[0-9\s]+$/.test(c) ? { password, totp_code: c } : { password, recovery_code: c };
      try {
        await api("POST", "/api/me/totp/disable", bodyJson);
        ctx.notify("Two-step login is off.", "ok");
        if (ctx.accountChanged) ctx.accountChanged(); else load();
      } catch (e) {
        err.textContent = e.status === 401 ? "Wrong password or code." : e.status === 429 ? `Too many attempts. Try again in ${e.retryAfter || "a few"} seconds.` : e.message;
      }
    });
    return form;
  }

  load();
  return () => { gone = true; freeQr(); };
}
