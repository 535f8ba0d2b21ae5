// The live grid's "Groups" dialog: named sets of cameras, made from
// checkboxes, kept in the user's preferences (the caller saves them). A
// group is shown on its own in the grid and is one stop of a tour. The same
// dialog edits the shared groups administrators keep for everyone.

import { h, fill, field } from "./dom.js";

const MAX_NAME = 60;

/**
 * Returns `{dialog, open(cameras, groups)}`. `cameras`: [{id, name}] the user
 * may see now; `groups`: [{name, cameras}]. `onSave(groups, selected)` gets
 * the new list (a copy) and the name of the group just saved (or null).
 * `prefix` names the elements' ids (`${prefix}s` is the dialog's).
 */
export function groupsDialog(onSave, { prefix = "live-group", heading = "Camera groups", note = "" } = {}) {
  const title = h("h2", { id: `${prefix}s-title`, text: heading });
  const pick = h("select", { id: `${prefix}s-pick` });
  const name = h("input", { id: `${prefix}-name`, maxlength: MAX_NAME, autocomplete: "off", required: true });
  const boxes = h("fieldset", { class: "group-cameras" });
  const error = h("p", { class: "error", role: "alert" });
  const del = h("button", { type: "button", class: "danger quiet", id: `${prefix}-delete`, text: "Delete group" });
  const form = h("form", { class: "group-form" },
    title,
    note ? h("p", { class: "muted", text: note }) : null,
    field("Group", pick),
    field("Name", name),
    boxes,
    error,
    h("div", { class: "buttons" },
      h("button", { type: "submit", class: "primary", id: `${prefix}-save`, text: "Save group" }),
      del,
      h("button", { type: "button", class: "quiet", text: "Close", onclick: () => dialog.close() })));
  const dialog = h("dialog", { id: `${prefix}s`, "aria-labelledby": title.id }, form);
  let cams = [];
  let groups = [];

  function show(which) {
    const g = groups.find((x) => x.name === which);
    pick.value = g ? g.name : "";
    name.value = g ? g.name : "";
    del.hidden = !g;
    error.textContent = "";
    const chosen = new Set(g ? g.cameras : []);
    // Cameras the group names but the user cannot see now stay in it, unshown.
    fill(boxes, h("legend", { text: "Cameras in the group, in this order" }),
      cams.map((c) => h("label", {},
        h("input", { type: "checkbox", name: "camera", value: c.id, checked: chosen.has(c.id) }), ` ${c.name}`)));
  }

  pick.addEventListener("change", () => show(pick.value));

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const old = groups.find((x) => x.name === pick.value);
    const n = name.value.trim();
    const ids = [...boxes.querySelectorAll("input:checked")].map((i) => i.value);
    if (!n) { error.textContent = "Give the group a name."; name.focus(); return; }
    if (groups.some((x) => x.name === n && x !== old)) { error.textContent = `There is already a group named ${n}.`; name.focus(); return; }
    if (!ids.length) { error.textContent = "Tick at least one camera."; return; }
    const seen = new Set(cams.map((c) => c.id));
    const kept = old ? old.cameras.filter((id) => !seen.has(id)) : [];
    const g = { name: n, cameras: [...ids, ...kept] };
    const next = old ? groups.map((x) => (x === old ? g : x)) : [...groups, g];
    onSave(next, n, old ? old.name : null);
    dialog.close();
  });

  del.addEventListener("click", () => {
    const old = groups.find((x) => x.name === pick.value);
    if (!old) return;
    onSave(groups.filter((x) => x !== old), null, old.name);
    dialog.close();
  });

  return {
    dialog,
    open(cameras, current, which) {
      cams = cameras;
      groups = current;
      fill(pick, h("option", { value: "", text: "New group" }), groups.map((g) => h("option", { value: g.name, text: g.name })));
      show(which || "");
      dialog.showModal();
      name.focus();
    },
  };
}
