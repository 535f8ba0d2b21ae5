// Camera setup (admins): add by RTSP URL or from an ONVIF discovery run
// ("Find cameras"), test before saving, edit, disable, remove (the health of each camera is the Cameras page, cameras.js). Each change goes to the config file and applies to that camera
// only. Passwords go from the form to the API and are cleared at once; the
// server never sends them back (only whether one is set).

import { api, seg } from "./api.js";
import { h, fill, field, table, uid } from "./dom.js";

/** How often the State column is refreshed. */
const POLL_MS = 5000;

/** The camera register's fields (Surveillance Camera Code of Practice, principles 1-3). */
const REGISTER = ["purpose", "location", "lawful_basis", "review_date"];

/** Largest day count the server reads (`u32`). */
const MAX_DAYS = 4294967295;

/**
 * What is wrong with "Keep footage with events" beside "Keep recordings",
 * in the editor's words; null when fine. The same rules as the server's
 * (`config::event_days_problem`): 0, or more than a set `retain_days`.
 */
export function eventDaysProblem(daysText, eventText) {
  const t = String(eventText).trim();
  if (t === "" || t === "0") return null;
  if (!/^\d+$/.test(t) || Number(t) > MAX_DAYS) return "Enter a whole number of days (0 or more).";
  const e = Number(t);
  const d = Number(String(daysText).trim()) || 0;
  if (e === 0) return null;
  if (d === 0) return "Recordings are kept until space runs out (0 days above), so there is nothing to extend: enter 0, or first set how many days recordings are kept.";
  if (e <= d) return `Must be more than the ${d} day${d === 1 ? "" : "s"} recordings are kept (footage with events is kept longer, never shorter), or 0 for no difference.`;
  return null;
}

const TRANSPORTS = [
  ["auto", "Automatic (TCP, then UDP)"],
  ["tcp", "TCP"],
  ["udp", "UDP"],
];

export function mount(root, ctx) {
  const listBox = h("div", { id: "cameras-list" });
  const findBox = h("div", { id: "camera-discovery" });
  const editBox = h("div", { id: "camera-edit" });
  const msg = h("p", { role: "status", class: "muted" });
  let gone = false;

  fill(root,
    h("div", { class: "view-head" }, h("h1", { text: "Camera setup" })),
    h("p", { class: "muted", text: "Changes are saved to the configuration file and apply at once to that camera only; the others keep recording. Removing a camera keeps its recordings until retention deletes them. " },
      "How each camera is doing: ", h("a", { href: "#/cameras", text: "Cameras" }), "."),
    msg, listBox, findBox, editBox);

  const stateText = (c) => (c.enabled ? c.state.replace("_", " ") : "disabled");

  /** Refreshes only the State column in place (no focus or open confirmation lost). */
  async function poll() {
    if (gone || document.hidden) return;
    try {
      const c = await api("GET", "/api/cameras");
      for (const cam of c.cameras) {
        const el = [...listBox.querySelectorAll(".cam-state")].find((e) => e.dataset.id === cam.id);
        if (el && !gone) el.textContent = stateText(cam);
      }
    } catch { /* the next poll or action shows it */ }
  }

  async function load() {
    try {
      const c = await api("GET", "/api/cameras");
      if (!gone) render(c.cameras);
    } catch (e) {
      if (!gone) msg.textContent = `Could not load cameras: ${e.message}`;
    }
  }

  /** The register cell: purpose and location, with what needs an admin's attention. */
  function registerCell(c) {
    const flags = [];
    if (c.purpose_missing) flags.push(h("span", { class: "flag warn", text: "No purpose stated" }));
    if (c.review_overdue) flags.push(h("span", { class: "flag warn", text: `Review overdue (due ${c.review_date})` }));
    else if (!c.review_date) flags.push(h("span", { class: "flag", text: "No review date" }));
    else flags.push(h("span", { class: "muted", text: `Review by ${c.review_date}` }));
    return h("div", { class: "register", dataset: { id: c.id } },
      c.purpose ? h("div", { text: c.purpose }) : null,
      c.location ? h("div", { class: "muted", text: c.location }) : null,
      h("div", { class: "flags" }, flags.map((f, i) => [i ? " " : null, f])));
  }

  function render(cams) {
    const rows = cams.map((c) => [
      h("span", { class: "strong", text: c.name }),
      c.id,
      (c.config && (c.config.url || (c.config.onvif && `ONVIF ${c.config.onvif.host}`))) || "",
      h("span", { class: "cam-state", dataset: { id: c.id }, text: stateText(c) }),
      c.record ? "Yes" : "Live only",
      registerCell(c),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "quiet", text: "Edit", "aria-label": `Edit ${c.name}`, onclick: () => edit(c) }),
        h("button", { type: "button", class: "quiet", text: c.enabled ? "Disable" : "Enable", "aria-label": `${c.enabled ? "Disable" : "Enable"} ${c.name}`, onclick: () => toggle(c) }),
        removeButton(c)),
    ]);
    fill(listBox,
      table("Cameras", ["Name", "Id", "Address", "State", "Recording", "Purpose and review", "Actions"], rows, { captionHidden: true, class: "cameras-admin", empty: "No cameras yet." }),
      h("p", { class: "buttons" },
        h("button", { type: "button", class: "primary", text: "Add camera", onclick: () => edit(null) }),
        " ",
        h("button", { type: "button", class: "quiet", id: "find-cameras", text: "Find cameras", onclick: () => discover("") })));
  }

  /** The stored settings as a PUT body: what the API showed, secrets left out (so kept). */
  function bodyOf(cfg) {
    const b = { name: cfg.name, transport: cfg.transport, enabled: cfg.enabled, record: cfg.record,
      retain_days: cfg.retain_days, retain_event_days: cfg.retain_event_days || 0, retain_bytes: cfg.retain_bytes };
    if (cfg.url) b.url = cfg.url;
    if (cfg.sub_url) b.sub_url = cfg.sub_url;
    if (cfg.username) b.username = cfg.username;
    for (const k of REGISTER) if (cfg[k]) b[k] = cfg[k];
    if (cfg.onvif) {
      b.onvif = { host: cfg.onvif.host, port: cfg.onvif.port };
      if (cfg.onvif.username) b.onvif.username = cfg.onvif.username;
      if (cfg.onvif.profile) b.onvif.profile = cfg.onvif.profile;
    }
    return b;
  }

  async function toggle(c) {
    const body = { ...bodyOf(c.config), enabled: !c.enabled };
    try {
      await api("PUT", `/api/cameras/${seg(c.id)}`, body);
      ctx.notify(`${c.enabled ? "Disabled" : "Enabled"} ${c.name}.`, "ok");
      load();
    } catch (e) {
      ctx.notify(`Could not change ${c.name}: ${e.message}`, "error");
    }
  }

  function removeButton(c) {
    const wrap = h("span");
    const ask = h("button", { type: "button", class: "quiet danger", text: "Remove", "aria-label": `Remove ${c.name}` });
    ask.addEventListener("click", () => {
      const yes = h("button", { type: "button", class: "danger", text: `Remove ${c.name}` });
      const no = h("button", { type: "button", class: "quiet", text: "Keep" });
      yes.addEventListener("click", async () => {
        try {
          await api("DELETE", `/api/cameras/${seg(c.id)}`);
          ctx.notify(`Removed ${c.name}; its recordings stay until retention deletes them.`, "ok");
          load();
        } catch (e) {
          ctx.notify(`Could not remove ${c.name}: ${e.message}`, "error");
          fill(wrap, ask);
        }
      });
      no.addEventListener("click", () => { fill(wrap, ask); ask.focus(); });
      fill(wrap, h("span", { class: "confirm", role: "group", "aria-label": `Confirm removal of ${c.name}` }, yes, " ", no));
      no.focus();
    });
    return fill(wrap, ask);
  }

  /**
   * "Find cameras": one WS-Discovery run on the server (multicast on its LAN,
   * or a unicast probe of `target` for a camera on another subnet), listing
   * each device with an Add button unless a camera already uses it.
   */
  async function discover(target) {
    const addr = h("input", { name: "probe-target", autocomplete: "off", spellcheck: "false", placeholder: "192.0.2.10", value: target });
    const again = h("form", { class: "inline", "aria-label": "Probe one address" },
      field("Not listed? Probe one address (another subnet)", addr),
      h("button", { type: "submit", class: "quiet", text: "Probe" }));
    again.addEventListener("submit", (ev) => { ev.preventDefault(); discover(addr.value.trim()); });
    const status = h("p", { class: "muted", role: "status", text: target ? `Asking ${target}…` : "Searching the network for ONVIF cameras…" });
    const results = h("div", { class: "discovery-results" });
    fill(findBox, h("section", { class: "panel", "aria-label": "Cameras found" },
      h("h2", { text: "Cameras on the network" }), status, results, again,
      h("p", {}, h("button", { type: "button", class: "quiet", text: "Close", onclick: () => fill(findBox) }))));
    let found;
    try {
      found = await api("POST", "/api/onvif/discover", target ? { target } : {});
    } catch (e) {
      if (!gone) status.textContent = `Could not search: ${e.message}`;
      return;
    }
    if (gone) return;
    const n = found.devices.length;
    status.textContent = n ? `${n} device${n === 1 ? "" : "s"} answered.` : (target ? `Nothing answered at ${target}.` : "No ONVIF camera answered. Cameras on another subnet can be probed by address below.");
    const rows = found.devices.map((d) => {
      const label = d.name || d.model || d.from;
      const model = [d.manufacturer, d.model].filter(Boolean).join(" ");
      let action;
      if (d.added.length) action = h("span", { class: "flag", text: `Added (${d.added.join(", ")})` });
      else if (!d.host) action = h("span", { class: "muted", text: "Its service address is not the one that answered; add it by URL" });
      else action = h("button", { type: "button", class: "quiet", text: "Add", "aria-label": `Add ${label}`, onclick: () => edit(null, { id: d.suggested_id, name: label, onvif: { host: d.host, port: d.port } }) });
      return [h("span", { class: "strong", text: label }), model || h("span", { class: "muted", text: "Not told without credentials" }), d.host ? `${d.host}:${d.port}` : d.from, d.location || "", action];
    });
    if (n) fill(results, table("Cameras found", ["Name", "Model", "Address", "Location", ""], rows, { captionHidden: true, class: "discovered" }));
  }

  /**
   * Add (`c` null) or edit form, with "Test connection" before saving.
   * `found`: a discovered ONVIF device to add ({id, name, onvif: {host, port}}).
   */
  function edit(c, found) {
    const cfg = c ? c.config : null;
    // ONVIF mode: the stream address is asked of the camera and the
    // credentials are its ONVIF account (also used for RTSP).
    const onvif = cfg ? cfg.onvif : found ? found.onvif : null;
    const id = h("input", { name: "id", required: true, autocomplete: "off", spellcheck: "false", pattern: "[a-z0-9_\\-]{1,64}", maxlength: 64, value: cfg ? cfg.id : found ? found.id : "", disabled: !!cfg });
    const name = h("input", { name: "name", autocomplete: "off", maxlength: 200, value: cfg ? cfg.name : found ? found.name : "" });
    const url = h("input", { name: "url", type: "url", required: !onvif, autocomplete: "off", spellcheck: "false", placeholder: "rtsp://192.0.2.10:554/stream1", value: cfg && cfg.url ? cfg.url : "" });
    const storedUser = onvif ? onvif.username : cfg && cfg.username;
    const user = h("input", { name: "username", autocomplete: "off", value: storedUser || "" });
    const pw = h("input", { name: "password", type: "password", autocomplete: "new-password" });
    const transport = h("select", { name: "transport" },
      TRANSPORTS.map(([v, t]) => h("option", { value: v, selected: (cfg ? cfg.transport : "auto") === v, text: t })));
    const days = h("input", { name: "retain_days", type: "number", min: 0, value: cfg ? cfg.retain_days : 30 });
    // No min/step: a bad value gets the message below, not the browser's bubble alone.
    const eventDays = h("input", { name: "retain_event_days", type: "number", inputmode: "numeric", value: cfg ? cfg.retain_event_days || 0 : 0 });
    const eventDaysErr = h("span", { class: "error field-error", id: uid("event-days-error"), role: "alert" });
    /** Checks the field as the server would; shows why, and keeps the form from sending it. */
    function checkEventDays() {
      const why = eventDaysProblem(days.value, eventDays.value);
      eventDaysErr.textContent = why || "";
      eventDays.setCustomValidity(why || "");
      if (why) eventDays.setAttribute("aria-invalid", "true"); else eventDays.removeAttribute("aria-invalid");
      return !why;
    }
    eventDays.addEventListener("input", checkEventDays);
    days.addEventListener("input", () => { if (eventDaysErr.textContent) checkEventDays(); });
    const record = h("input", { name: "record", type: "checkbox", checked: cfg ? cfg.record : true });
    const enabled = h("input", { name: "enabled", type: "checkbox", checked: cfg ? cfg.enabled : true });
    const purpose = h("textarea", { name: "purpose", rows: 2, maxlength: 1000, text: cfg && cfg.purpose ? cfg.purpose : "" });
    const location = h("input", { name: "location", autocomplete: "off", maxlength: 1000, value: cfg && cfg.location ? cfg.location : "" });
    const lawful = h("input", { name: "lawful_basis", autocomplete: "off", maxlength: 1000, value: cfg && cfg.lawful_basis ? cfg.lawful_basis : "", placeholder: "e.g. UK GDPR Art. 6(1)(e), public task" });
    const review = h("input", { name: "review_date", type: "date", value: cfg && cfg.review_date ? cfg.review_date : "" });
    const result = h("div", { class: "test-result", role: "status" });
    const err = h("p", { class: "error", role: "alert" });
    // ONVIF streams: read from the camera with the credentials typed above,
    // then main (pinned as onvif.profile) and sub (its URI as sub_url) chosen
    // here. Until read, the stored choice stands.
    const mainSel = h("select", { name: "onvif-main" });
    const subSel = h("select", { name: "onvif-sub" });
    const choice = h("div", { class: "stream-choice", hidden: true },
      field("Recorded stream", mainSel), field("Grid stream", subSel));
    const streamsNote = h("p", { class: "muted", role: "status" });
    let streamsRead = false;
    async function readStreams() {
      fill(streamsNote, "Asking the camera for its streams…");
      readBtn.disabled = true;
      try {
        const b = { host: onvif.host, port: onvif.port };
        if (user.value.trim()) b.username = user.value.trim();
        if (pw.value) b.password = pw.value;
        if (cfg) b.id = cfg.id;
        const r = await api("POST", "/api/onvif/profiles", b);
        if (!r.ok) { fill(streamsNote, h("span", { class: "error", text: `Could not read the streams: ${r.reason}` })); return; }
        const label = (p) => `${p.name || p.token}: ${[p.encoding, p.width && `${p.width}×${p.height}`, p.fps && `${p.fps} fps`].filter(Boolean).join(", ")}`;
        const mainNow = (cfg && onvif.profile) || r.main;
        const subNow = cfg ? cfg.sub_url : (r.profiles.find((p) => p.token === r.sub) || {}).stream_uri;
        fill(mainSel, r.profiles.map((p) => h("option", { value: p.token, text: label(p), selected: p.token === mainNow })));
        fill(subSel, h("option", { value: "", text: "None (live grids use the main stream)" }),
          r.profiles.filter((p) => p.stream_uri).map((p) => h("option", { value: p.stream_uri, text: label(p), selected: p.stream_uri === subNow })));
        choice.hidden = false;
        streamsRead = true;
        fill(streamsNote, `${r.profiles.length} stream${r.profiles.length === 1 ? "" : "s"} offered${r.model ? ` by ${[r.manufacturer, r.model].filter(Boolean).join(" ")}` : ""}.`);
      } catch (e) {
        fill(streamsNote, h("span", { class: "error", text: e.message }));
      } finally {
        readBtn.disabled = false;
      }
    }
    const readBtn = h("button", { type: "button", class: "quiet", text: "Read streams", onclick: readStreams });
    const secretHint = cfg && (cfg.password_set || cfg.url_has_credentials || (onvif && onvif.password_set))
      ? "A password is stored and is not shown. Leave empty to keep it."
      : "Stored in the configuration file (readable by the server only), never shown again.";

    function body() {
      const b = cfg ? bodyOf(cfg) : {};
      if (!cfg) b.id = id.value.trim();
      b.name = name.value.trim();
      if (url.value.trim()) b.url = url.value.trim(); else delete b.url;
      if (onvif) {
        b.onvif = { ...(b.onvif || { host: onvif.host, port: onvif.port }) };
        if (user.value.trim()) b.onvif.username = user.value.trim(); else delete b.onvif.username;
        if (pw.value) b.onvif.password = pw.value;
        if (streamsRead) {
          b.onvif.profile = mainSel.value;
          if (subSel.value) b.sub_url = subSel.value; else delete b.sub_url;
        }
      } else {
        if (user.value.trim()) b.username = user.value.trim(); else delete b.username;
        if (pw.value) b.password = pw.value;
      }
      b.transport = transport.value;
      b.retain_days = Number(days.value) || 0;
      b.retain_event_days = Number(eventDays.value) || 0;
      b.record = record.checked;
      b.enabled = enabled.checked;
      const reg = { purpose: purpose.value.trim(), location: location.value.trim(), lawful_basis: lawful.value.trim(), review_date: review.value };
      for (const k of REGISTER) { if (reg[k]) b[k] = reg[k]; else delete b[k]; }
      return b;
    }

    const testBtn = h("button", { type: "button", class: "quiet", text: "Test connection" });
    testBtn.addEventListener("click", async () => {
      fill(result, h("p", { class: "muted", text: "Connecting…" }));
      testBtn.disabled = true;
      try {
        const b = body();
        if (cfg) b.id = cfg.id;
        const t = await api("POST", "/api/cameras/test", b);
        if (t.ok) {
          fill(result,
            h("p", { class: "ok", text: `Connected: ${t.codec}, ${t.width}×${t.height}${t.audio ? `, audio ${t.audio}` : ""} over ${t.transport.toUpperCase()}.` }),
            t.snapshot ? h("img", { src: t.snapshot, alt: "First picture from the camera", class: "test-snapshot", width: 320 }) : null);
        } else {
          fill(result, h("p", { class: "error", text: `Could not connect: ${t.reason}` }));
        }
      } catch (e) {
        fill(result, h("p", { class: "error", text: e.message }));
      } finally {
        testBtn.disabled = false;
      }
    });

    const title = cfg ? `Edit ${c.name}` : found ? `Add ${found.name}` : "Add camera";
    const form = h("form", { class: "panel", "aria-label": title },
      h("h2", { text: title }),
      field("Id", id, "Lower-case letters, digits, _ and - (recordings are filed under it; it cannot change)."),
      field("Name", name),
      onvif ? h("div", { class: "field" }, h("span", { class: "label", text: "ONVIF device" }),
        h("span", { class: "onvif-address", text: `${onvif.host}:${onvif.port}` })) : null,
      field("RTSP URL", url, onvif
        ? "Leave empty: the stream address is asked of the camera over ONVIF (the recorded stream chosen below, else its largest)."
        : "The camera's main stream. Credentials may be in the URL or below."),
      field(onvif ? "ONVIF username" : "Username", user),
      field(onvif ? "ONVIF password" : "Password", pw, secretHint),
      onvif ? h("fieldset", { class: "onvif-streams" },
        h("legend", { text: "Streams" }),
        h("p", { class: "muted", text: "Which of the camera's streams to record, and which (smaller) one live grids show. Read them with the ONVIF account above." }),
        readBtn, streamsNote, choice) : null,
      field("Transport", transport),
      field("Keep recordings (days, 0 = until space runs out)", days),
      eventDaysField(),
      h("label", {}, record, " Record (otherwise live view only)"),
      h("label", {}, enabled, " Enabled"),
      h("fieldset", { class: "register-fields" },
        h("legend", { text: "Camera register (Surveillance Camera Code of Practice)" }),
        field("Purpose", purpose, "Why this camera is there, e.g. \"Crime prevention and public safety in the market square\". Cameras without one are flagged."),
        field("Location", location, "Where it is and what it looks at, as the public register should say it."),
        field("Lawful basis", lawful),
        field("Next review", review, "The day its use is next to be reviewed; flagged once it has passed.")),
      h("div", { class: "buttons" },
        testBtn,
        h("button", { type: "submit", class: "primary", text: cfg ? "Save changes" : "Add camera" }),
        h("button", { type: "button", class: "quiet", text: "Cancel", onclick: () => fill(editBox) })),
      result, err);
    function eventDaysField() {
      const f = field("Keep footage with events (days, 0 = no difference)", eventDays,
        "Recordings during which this camera reported an event (motion, tampering, line crossing…) are kept this many days instead. More than the days above.");
      f.append(eventDaysErr);
      eventDays.setAttribute("aria-describedby", `${eventDays.getAttribute("aria-describedby")} ${eventDaysErr.id}`);
      return f;
    }

    // Checked before the browser's own validation, so the message is ours.
    form.addEventListener("click", (ev) => { if (ev.target.closest("button[type=submit]")) checkEventDays(); }, true);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!checkEventDays()) { eventDays.focus(); return; }
      const b = body();
      pw.value = "";
      try {
        if (cfg) await api("PUT", `/api/cameras/${seg(cfg.id)}`, b);
        else await api("POST", "/api/cameras", b);
        fill(editBox);
        ctx.notify(cfg ? `Saved ${b.name || cfg.id}.` : `Added ${b.name || b.id}; it starts recording now.`, "ok");
        if (found) fill(findBox);
        load();
      } catch (e) {
        err.textContent = e.message;
      }
    });
    fill(editBox, form);
    (cfg ? name : id).focus();
  }

  load();
  const timer = setInterval(poll, POLL_MS);
  return () => { gone = true; clearInterval(timer); };
}
