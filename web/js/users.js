// Users (admins): list, add, change role / cameras / password, remove.
// Passwords go from the form to the API and are cleared at once; they are
// never shown or kept.

import { api, seg } from "./api.js";
import { h, fill, field, table, uid } from "./dom.js";
import { dateTime } from "./format.js";

const ROLES = [
  ["viewer", "Viewer: live and playback"],
  ["operator", "Operator: also exports"],
  ["admin", "Administrator: everything"],
];

export function mount(root, ctx) {
  const listBox = h("div", { id: "users-list" });
  const editBox = h("div", { id: "user-edit" });
  const msg = h("p", { role: "status", class: "muted" });
  let cameras = [];
  let gone = false;

  fill(root,
    h("div", { class: "view-head" }, h("h1", { text: "Users" })),
    msg, listBox, editBox);

  function roleSelect(value) {
    return h("select", { name: "role", required: true },
      ROLES.map(([v, t]) => h("option", { value: v, selected: v === value, text: t })));
  }

  /** "All cameras" or a checkbox list; returns {el, value()} */
  function cameraPicker(current) {
    const name = uid("scope");
    const all = h("input", { type: "radio", name, value: "all", checked: current === null });
    const some = h("input", { type: "radio", name, value: "some", checked: current !== null });
    const boxes = cameras.map((c) => h("input", { type: "checkbox", value: c.id, checked: current !== null && current.includes(c.id) }));
    const list = h("div", { class: "checks" }, cameras.map((c, i) => h("label", {}, boxes[i], ` ${c.name}`)));
    const sync = () => { for (const b of boxes) b.disabled = all.checked; };
    all.addEventListener("change", sync);
    some.addEventListener("change", sync);
    sync();
    const el = h("fieldset", { class: "cameras" },
      h("legend", { text: "Cameras" }),
      h("label", {}, all, " All cameras, including ones added later"),
      h("label", {}, some, " Only these:"),
      list);
    return { el, value: () => (all.checked ? null : boxes.filter((b) => b.checked).map((b) => b.value)) };
  }

  function camerasText(list) {
    if (list === null) return "All";
    if (!list.length) return "None";
    const names = new Map(cameras.map((c) => [c.id, c.name]));
    return list.map((id) => names.get(id) || id).join(", ");
  }

  async function load() {
    try {
      const [u, c] = await Promise.all([api("GET", "/api/users"), api("GET", "/api/cameras")]);
      if (gone) return;
      cameras = c.cameras;
      render(u.users);
    } catch (e) {
      if (!gone) msg.textContent = `Could not load users: ${e.message}`;
    }
  }

  function render(users) {
    const rows = users.map((u) => [
      h("span", { class: "strong", text: u.name }),
      h("span", { class: `role role-${u.role}`, text: u.role }),
      camerasText(u.cameras),
      u.totp ? "On" : "Off",
      dateTime(u.created),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "quiet", text: "Edit", "aria-label": `Edit ${u.name}`, onclick: () => edit(u) }),
        u.totp ? resetTotpButton(u) : null,
        removeButton(u)),
    ]);
    fill(listBox,
      table("User accounts", ["Name", "Role", "Cameras", "Two-step login", "Created", "Actions"], rows, { captionHidden: true, class: "users" }),
      h("p", {}, h("button", { type: "button", class: "primary", text: "Add user", onclick: () => create() })));
  }

  function removeButton(u) {
    const wrap = h("span");
    const ask = h("button", { type: "button", class: "quiet danger", text: "Remove", "aria-label": `Remove ${u.name}` });
    ask.addEventListener("click", () => {
      const yes = h("button", { type: "button", class: "danger", text: `Remove ${u.name}` });
      const no = h("button", { type: "button", class: "quiet", text: "Keep" });
      yes.addEventListener("click", async () => {
        try {
          await api("DELETE", `/api/users/${seg(u.name)}`);
          ctx.notify(`Removed ${u.name}; their sessions have ended.`, "ok");
          load();
        } catch (e) {
          ctx.notify(`Could not remove ${u.name}: ${e.message}`, "error");
          fill(wrap, ask);
        }
      });
      no.addEventListener("click", () => { fill(wrap, ask); ask.focus(); });
      fill(wrap, h("span", { class: "confirm", role: "group", "aria-label": `Confirm removal of ${u.name}` }, yes, " ", no));
      no.focus();
    });
    return fill(wrap, ask);
  }

  /** For a lost phone: the user logs in with the password alone and may set up again. */
  function resetTotpButton(u) {
    const b = h("button", { type: "button", class: "quiet", text: "Reset two-step login", "aria-label": `Reset two-step login of ${u.name}` });
    b.addEventListener("click", async () => {
      if (!window.confirm(`Remove ${u.name}'s two-step login? They will log in with the password alone until they set it up again.`)) return;
      try {
        await api("DELETE", `/api/users/${seg(u.name)}/totp`);
        ctx.notify(`Two-step login removed for ${u.name}.`, "ok");
        load();
      } catch (e) {
        ctx.notify(`Could not reset ${u.name}: ${e.message}`, "error");
      }
    });
    return b;
  }

  function passwordInput(label, autocomplete) {
    return h("input", { type: "password", name: label, autocomplete, minlength: 8, maxlength: 1024 });
  }

  function create() {
    const name = h("input", { name: "name", required: true, autocomplete: "off", spellcheck: "false", pattern: "[A-Za-z0-9_@][A-Za-z0-9._@\\-]{0,63}", maxlength: 64 });
    const role = roleSelect("viewer");
    const pw = passwordInput("password", "new-password");
    pw.required = true;
    const picker = cameraPicker(null);
    const err = h("p", { class: "error", role: "alert" });
    const form = h("form", { class: "panel", "aria-labelledby": "add-user-title" },
      h("h2", { id: "add-user-title", text: "Add user" }),
      field("User name", name, "Letters, digits and . _ @ - (up to 64)."),
      field("Role", role),
      field("Password", pw, "At least 8 characters. Give it to the user in person."),
      picker.el,
      h("div", { class: "buttons" },
        h("button", { type: "submit", class: "primary", text: "Add user" }),
        h("button", { type: "button", class: "quiet", text: "Cancel", onclick: () => fill(editBox) })),
      err);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = { name: name.value.trim(), role: role.value, password: pw.value };
      const cams = picker.value();
      if (cams !== null) body.cameras = cams;
      pw.value = "";
      try {
        await api("POST", "/api/users", body);
        fill(editBox);
        ctx.notify(`Added ${body.name}.`, "ok");
        load();
      } catch (e) {
        err.textContent = e.message;
      }
    });
    fill(editBox, form);
    name.focus();
  }

  function edit(u) {
    const role = roleSelect(u.role);
    const picker = cameraPicker(u.cameras);
    const pw = passwordInput("password", "new-password");
    const err = h("p", { class: "error", role: "alert" });
    const titleId = uid("edit");
    const form = h("form", { class: "panel", "aria-labelledby": titleId },
      h("h2", { id: titleId, text: `Edit ${u.name}` }),
      field("Role", role),
      picker.el,
      field("New password", pw, "Leave empty to keep the current one. A new password ends the user's sessions."),
      h("div", { class: "buttons" },
        h("button", { type: "submit", class: "primary", text: "Save changes" }),
        h("button", { type: "button", class: "quiet", text: "Cancel", onclick: () => fill(editBox) })),
      err);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = {};
      if (role.value !== u.role) body.role = role.value;
      const cams = picker.value();
      if (JSON.stringify(cams) !== JSON.stringify(u.cameras)) body.cameras = cams;
      if (pw.value) body.password = pw.value;
      pw.value = "";
      if (!Object.keys(body).length) { fill(editBox); return; }
      try {
        await api("PUT", `/api/users/${seg(u.name)}`, body);
        fill(editBox);
        ctx.notify(`Saved changes to ${u.name}.`, "ok");
        load();
      } catch (e) {
        err.textContent = e.message;
      }
    });
    fill(editBox, form);
    role.focus();
  }

  load();
  return () => { gone = true; };
}
