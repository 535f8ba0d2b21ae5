// Bookmarks on the playback page: "Bookmark (B)" names the moment under the
// playhead for one of the cameras shown (operators and admins); the list
// under the timeline shows the bookmarks in view with a button that jumps to
// each, and lets their author (or an admin) delete them. The timeline draws
// them as flags on each camera's lane.

import { api, seg, withQuery } from "./api.js";
import { h, fill, field } from "./dom.js";
import { dateTime } from "./format.js";

/**
 * `opts`: `{ctx, cameras: () => [{id, name}], now: () => ms, jump: (ms) => void, changed: () => void}`.
 * Returns `{button, dialog, list, load(ids, a, b) → Map(camera → [bookmark]), open()}`.
 */
export function bookmarks(opts) {
  const { ctx } = opts;
  const canAdd = ctx.me.role === "admin" || ctx.me.role === "operator";
  const button = canAdd ? h("button", { type: "button", class: "quiet", id: "pb-bookmark", text: "Bookmark (B)" }) : null;
  const camSel = h("select", { id: "bm-camera", name: "camera" });
  const name = h("input", { id: "bm-name", name: "name", maxlength: 120, autocomplete: "off", required: true });
  const note = h("textarea", { id: "bm-note", name: "note", maxlength: 2000 });
  const when = h("output", { id: "bm-time" });
  const err = h("p", { class: "error", role: "alert" });
  let at = 0;
  const form = h("form", { method: "dialog", class: "bookmark-form" },
    h("h2", { id: "bm-title", text: "Bookmark this moment" }),
    h("p", {}, "At ", when),
    field("Camera", camSel), field("Name", name, "Shown on the timeline to everyone who can see this camera."), field("Note (optional)", note),
    err,
    h("div", { class: "buttons" },
      h("button", { type: "submit", class: "primary", id: "bm-save", value: "save", text: "Save bookmark" }),
      h("button", { type: "button", class: "quiet", text: "Cancel", onclick: () => dialog.close() })));
  const dialog = h("dialog", { id: "bm-dialog", "aria-labelledby": "bm-title" }, form);
  const list = h("div", { class: "bookmarks", id: "pb-bookmarks" });

  function open() {
    if (!canAdd) return;
    const cams = opts.cameras();
    if (!cams.length) { ctx.notify("Choose a camera for a tile first.", "error"); return; }
    at = Math.round(opts.now());
    when.textContent = dateTime(at);
    const keep = camSel.value;
    fill(camSel, cams.map((c) => h("option", { value: c.id, text: c.name })));
    if (cams.some((c) => c.id === keep)) camSel.value = keep;
    name.value = "";
    note.value = "";
    err.textContent = "";
    dialog.showModal();
    name.focus();
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!name.value.trim()) { err.textContent = "Give the bookmark a name."; name.focus(); return; }
    try {
      await api("POST", "/api/bookmarks", { camera: camSel.value, time: new Date(at).toISOString(), name: name.value.trim(), note: note.value.trim() });
    } catch (e) {
      err.textContent = e.message;
      return;
    }
    dialog.close();
    ctx.notify(`Bookmark "${name.value.trim()}" saved.`, "ok");
    opts.changed();
  });
  if (button) button.addEventListener("click", open);

  async function remove(b) {
    if (!confirm(`Delete the bookmark "${b.name}"?`)) return;
    try {
      await api("DELETE", `/api/bookmarks/${seg(b.id)}`);
    } catch (e) {
      ctx.notify(e.message, "error");
      return;
    }
    ctx.notify(`Bookmark "${b.name}" deleted.`, "ok");
    opts.changed();
  }

  /** Fetches the bookmarks of `ids` in `[a, b)` (ms); fills the list; returns them by camera. */
  async function load(ids, a, b) {
    const byCam = new Map();
    if (!ids.length) { fill(list); return byCam; }
    const r = await api("GET", withQuery("/api/bookmarks", { cameras: ids.join(","), start: new Date(a).toISOString(), end: new Date(b).toISOString() }));
    const names = new Map(opts.cameras().map((c) => [c.id, c.name]));
    const items = r.bookmarks.map((x) => ({ ...x, t: Date.parse(x.time) }));
    for (const x of items) {
      const l = byCam.get(x.camera) || [];
      l.push(x);
      byCam.set(x.camera, l);
    }
    const mine = (x) => x.created_by === ctx.me.name || ctx.me.role === "admin";
    fill(list, items.length ? [
      h("h2", { class: "sr-only", text: "Bookmarks" }),
      h("ul", { class: "plain bookmark-list" }, items.map((x) => h("li", { dataset: { id: x.id } },
        h("button", { type: "button", class: "quiet bm-go", title: x.note || null, onclick: () => opts.jump(x.t) },
          h("span", { class: "bm-flag", "aria-hidden": "true", text: "⚑" }), ` ${dateTime(x.t)} · `, h("strong", { text: x.name })),
        h("span", { class: "muted", text: ` ${names.get(x.camera) || x.camera}, by ${x.created_by}${x.note ? ` — ${x.note}` : ""}` }),
        mine(x) && canAdd ? h("button", { type: "button", class: "quiet bm-delete", "aria-label": `Delete bookmark ${x.name}`, text: "Delete", onclick: () => remove(x) }) : null)))]
      : []);
    return byCam;
  }

  return { button, dialog, list, load, open };
}
