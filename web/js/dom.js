// Small DOM helpers. Everything the UI shows is built with these, from
// text nodes: no innerHTML anywhere, so names and log entries from the
// server can never become markup.

/**
 * Creates an element. `attrs`: `class`, `text`, `on<Event>` handlers,
 * `dataset`, boolean attributes (`true` sets, `false`/null omits), and
 * anything else as an attribute. Children: nodes, strings, arrays, null.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "text") el.textContent = String(v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2).toLowerCase(), v);
    else if (k in el && typeof v !== "string" && k !== "list") el[k] = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let seq = 0;
/** A unique id for label/aria wiring. */
export const uid = (p = "id") => `${p}-${++seq}`;

/** A labelled form field: returns [label, control] wrapped in a div. */
export function field(labelText, control, hint) {
  if (!control.id) control.id = uid("f");
  const hintEl = hint ? h("span", { class: "hint", id: uid("hint"), text: hint }) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: control.id, text: labelText }), control, hintEl);
}

/** A table from column headers and rows of cells (strings or nodes). */
export function table(caption, headers, rows, opts = {}) {
  return h("div", { class: "table-wrap" },
    h("table", { class: opts.class || null },
      caption ? h("caption", { class: opts.captionHidden ? "sr-only" : null, text: caption }) : null,
      h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col", text: t })))),
      h("tbody", {}, rows.length
        ? rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))
        : h("tr", {}, h("td", { colspan: headers.length, class: "empty", text: opts.empty || "Nothing to show." })))));
}
