// Live view: one tile per camera the user may see, each playing the
// camera's live WebSocket through MSE. Click a picture (or its Enlarge
// button, reachable by keyboard) to show it alone; Escape returns to the grid.
// The grid shows a layout of 1, 2×2, 3×3 or 4×4 tiles per page (auto: the
// smallest that holds the cameras), all cameras, one of the user's groups or
// one of the groups administrators share with everyone (`/api/live/groups`,
// filtered by the server to the cameras the user may see), and can tour
// through groups and pages; these are the user's preferences,
// kept by the server (`/api/me/prefs`) so they follow the user to any browser.
// Only the tiles shown stream. Each picture zooms digitally (js/zoom.js).
// A tile whose camera sends sound has a sound toggle (js/sound.js): muted by
// default, and one tile audible at a time.

import { api } from "./api.js";
import { h, fill } from "./dom.js";
import { LivePlayer, canPlayLive } from "./player.js";
import { audioText, bitrate, codecName, dateTime, isHevc, tileState } from "./format.js";
import { ptzControls } from "./ptz.js";
import { zoomable } from "./zoom.js";
import { groupsDialog } from "./live_groups.js";
import { swipeable } from "./swipe.js";
import { SoundToggle } from "./sound.js";

const REFRESH_MS = 5000;
/** Badges and countdowns are redrawn this often, so they never say "Live" for long after frames stop. */
const TICK_MS = 1000;
/** Still pictures for cameras this browser cannot play live. */
const STILL_MS = 5000;
/** How far back "Replay" starts. */
const REPLAY_MS = 5 * 60e3;
/** How far back a tile's own instant replay starts. */
const TILE_REPLAY_MS = 30e3;
const LAYOUTS = [1, 4, 9, 16];
const LAYOUT_NAMES = { 0: "Auto", 1: "1", 4: "2×2", 9: "3×3", 16: "4×4" };
/** A phone-sized window, where the layout is one column (as in style.css). */
const PHONE = matchMedia("(max-width: 640px)");
const DEFAULT_PREFS = { live: { layout: 0, groups: [], group: null, group_shared: false, tour: { on: false, seconds: 10 } } };

export function mount(root, ctx) {
  const grid = h("div", { class: "grid", id: "live-grid" });
  const status = h("p", { class: "muted", role: "status" });
  const backBtn = h("button", { type: "button", class: "quiet", hidden: true, text: "Back to all cameras", onclick: () => enlarge(null) });
  const replayBtn = h("button", { type: "button", id: "live-replay", text: "⟲ Replay from 5 minutes ago", title: "Synchronised playback of the cameras shown, from 5 minutes ago", onclick: () => replay() });
  const layoutBtns = [0, ...LAYOUTS].map((n) => h("button", {
    type: "button", text: LAYOUT_NAMES[n], dataset: { layout: String(n) }, "aria-pressed": "false",
    title: n ? `${n} camera${n > 1 ? "s" : ""} per page` : "Auto: the smallest layout that holds the cameras",
    onclick: () => { prefs.live.layout = n; view.page = 0; save(); applyView(); },
  }));
  const groupSel = h("select", { id: "live-group", "aria-label": "Cameras shown" });
  groupSel.addEventListener("change", () => {
    const o = groupSel.selectedOptions[0];
    view.group = groupSel.value || null;
    view.shared = Boolean(view.group && o && o.dataset.shared);
    view.page = 0;
    remember();
    save();
    applyView();
  });
  const groups = groupsDialog((next, selected, old) => {
    prefs.live.groups = next;
    if ((!view.shared && view.group === old) || selected) {
      view.group = selected && next.some((g) => g.name === selected) ? selected : null;
      view.shared = false;
    }
    view.page = 0;
    remember();
    save();
    applyView();
  });
  /** Administrators keep the shared groups in the same dialog; the server stores them. */
  const sharedGroups = groupsDialog((next) => {
    api("PUT", "/api/live/groups", { groups: next }).then(() => loadShared()).catch((e) => {
      if (!gone) ctx.notify(`Could not save the shared groups: ${e.message}`, "error");
    });
  }, { prefix: "live-shared-group", heading: "Shared camera groups",
    note: "Every user sees these groups, each with the cameras that user may see." });
  const sharedBtn = h("button", { type: "button", id: "live-shared-groups-open", text: "Shared groups…", hidden: true,
    title: "Groups of cameras for everyone (administrators)",
    onclick: () => sharedGroups.open([...tiles.values()].map((t) => ({ id: t.cam.id, name: t.cam.name })), shared || [], null) });
  const groupsBtn = h("button", { type: "button", id: "live-groups-open", text: "Groups…", title: "Make, change or delete groups of cameras",
    onclick: () => groups.open([...tiles.values()].map((t) => ({ id: t.cam.id, name: t.cam.name })), prefs.live.groups, view.group) });
  const pageLabel = h("span", { id: "live-page", class: "muted", "aria-live": "polite" });
  const prevBtn = h("button", { type: "button", class: "icon", id: "live-prev", text: "‹", "aria-label": "Previous page", onclick: () => turn(-1) });
  const nextBtn = h("button", { type: "button", class: "icon", id: "live-next", text: "›", "aria-label": "Next page", onclick: () => turn(1) });
  const pager = h("span", { class: "pager" }, prevBtn, pageLabel, nextBtn);
  const tourBtn = h("button", { type: "button", id: "live-tour", "aria-pressed": "false", text: "▶ Tour",
    title: "Show each group in turn (every page of each), or the pages of all cameras when you have no groups",
    onclick: () => { prefs.live.tour.on = !prefs.live.tour.on; save(); setTour(); } });
  const tourSecs = h("input", { type: "number", id: "live-tour-seconds", min: 3, max: 3600, step: 1, value: 10, class: "secs" });
  tourSecs.addEventListener("change", () => {
    const v = Math.round(Number(tourSecs.value));
    if (!(v >= 3 && v <= 3600)) { tourSecs.value = String(prefs.live.tour.seconds); return; }
    prefs.live.tour.seconds = v;
    save();
    setTour();
  });
  const wallBtn = h("button", { type: "button", id: "live-wall", "aria-pressed": "false", text: "Video wall",
    title: "Full screen with only the pictures (Escape leaves)", onclick: () => setWall(!document.body.classList.contains("wall")) });
  const toolbar = h("div", { class: "live-bar", role: "toolbar", "aria-label": "Live grid" },
    h("span", { class: "layouts", role: "group", "aria-label": "Layout" }, layoutBtns),
    groupSel, groupsBtn, sharedBtn, pager,
    h("span", { class: "tour" }, tourBtn, h("label", { for: tourSecs.id, text: "every" }), tourSecs, h("span", { text: "s" })),
    wallBtn);
  fill(root,
    h("div", { class: "view-head" }, h("h1", { text: "Live" }), backBtn, replayBtn),
    toolbar,
    status,
    grid,
    h("button", { type: "button", class: "wall-exit", text: "Leave video wall", onclick: () => setWall(false) }),
    groups.dialog,
    sharedGroups.dialog);

  /** id → {cam, el, video, overlay, player, ...} */
  const tiles = new Map();
  let enlarged = null;
  let timer = null;
  let ticker = null;
  let gone = false;
  /** The user's preferences (saved), and what this screen shows now (not saved: a tour moves it). */
  let prefs = structuredClone(DEFAULT_PREFS);
  const view = { group: null, shared: false, page: 0 };
  /** The shared groups as this user sees them (an administrator sees them whole); null until loaded. */
  let shared = null;
  let tourTimer = null;
  let saving = Promise.resolve();
  /** Saves done, shown as the grid's `data-saved` (tests wait for it). */
  let saves = 0;
  /** Since when (ms epoch) the NVR has not answered /api/cameras; 0 while it does. */
  let nvrDownSince = 0;
  const isAdmin = () => document.body.dataset.role === "admin";

  function tileFor(cam) {
    const video = h("video", { muted: true, playsInline: true, autoplay: true, disablePictureInPicture: true, "aria-label": `Live picture from ${cam.name}` });
    video.muted = true; // the attribute alone does not mute a script-made element
    const overlay = h("div", { class: "overlay", role: "status", "aria-live": "polite" });
    const nameId = `cam-${cam.id}-name`;
    const badge = h("span", { class: "badge" });
    const enlargeBtn = h("button", { type: "button", class: "icon", "aria-pressed": "false", title: "Enlarge", "aria-label": `Enlarge ${cam.name}` }, "⤢");
    const replay30 = h("button", { type: "button", class: "icon tile-replay", title: "Replay the last 30 seconds", "aria-label": `Replay the last 30 seconds of ${cam.name}`,
      onclick: () => replay([cam.id], TILE_REPLAY_MS) }, "⟲");
    const snapBtn = h("button", { type: "button", class: "icon tile-snap", title: "Save a still picture (JPEG)", "aria-label": `Save a still picture of ${cam.name}`,
      onclick: () => saveSnapshot(t, snapBtn) }, "⤓");
    const sound = new SoundToggle(video, cam.name, (on) => setAudible(on ? cam.id : null));
    const zoomBtn = h("button", { type: "button", class: "icon zoom-level", hidden: true, title: "Digital zoom: click to reset", "aria-label": `Reset the zoom of ${cam.name}` });
    const meta = h("dl", { class: "meta" });
    const errorLine = h("p", { class: "tile-error" });
    const still = h("img", { class: "still", alt: `Latest still picture from ${cam.name}`, hidden: true });
    // The real date and time of the picture, from the server's clock for each key frame.
    const stamp = h("time", { class: "tile-clock", hidden: true });
    const screen = h("div", { class: "screen", title: "Click to enlarge; wheel or pinch to zoom, drag to pan, double-click to reset" }, video, still, stamp, overlay, zoomBtn);
    const el = h("article", { class: "tile", "aria-labelledby": nameId, dataset: { camera: cam.id } },
      h("div", { class: "tile-head" }, h("h2", { id: nameId, text: cam.name }), badge, sound.button, snapBtn, replay30, enlargeBtn),
      screen, meta, errorLine);
    const t = { cam, el, video, overlay, badge, meta, errorLine, enlargeBtn, stamp, sound, player: null, unsupported: null, still, stillTimer: null, stillUrl: null };
    video.addEventListener("timeupdate", () => drawClock(t));
    t.zoom = zoomable(screen, () => [video, still], (s) => {
      zoomBtn.hidden = s === 1;
      zoomBtn.textContent = `${s.toFixed(1)}×`;
    });
    zoomBtn.addEventListener("click", (ev) => { ev.stopPropagation(); t.zoom.reset(); });
    enlargeBtn.addEventListener("click", () => enlarge(enlarged === cam.id ? null : cam.id));
    // Enlarged and unzoomed, a swipe steps through the cameras of the selection.
    const swipe = swipeable(screen, () => enlarged === cam.id && t.zoom.scale() === 1, (d) => step(d));
    screen.addEventListener("click", (ev) => {
      // A swipe, a pan, a zoomed picture or the second click of a double-click is not a request to enlarge.
      const swiped = swipe.consume();
      if (swiped || t.zoom.consumeDrag() || t.zoom.scale() > 1 || ev.detail > 1) return;
      // On a phone the enlarged picture is still small: a tap makes it full screen (and back).
      if (enlarged === cam.id && PHONE.matches) toggleFullscreen();
      else enlarge(enlarged === cam.id ? null : cam.id);
    });
    t.player = new LivePlayer(video, cam.id, (state, info) => onPlayerState(t, state, info), () => api("GET", "/api/me"));
    t.player.onTracks = (hasSound) => sound.available(hasSound);
    return t;
  }

  /** Makes the tile of camera `id` the only audible one (null: none). */
  function setAudible(id) {
    for (const t of tiles.values()) t.sound.set(t.cam.id === id);
  }

  /** The tile's date and time: the picture's own, hidden while there is none. */
  function drawClock(t) {
    const ms = t.player && !t.still.src ? t.player.wallTime() : null;
    t.stamp.hidden = ms === null;
    if (ms === null) return;
    const text = dateTime(ms);
    if (t.stamp.textContent !== text) {
      t.stamp.textContent = text;
      t.stamp.dateTime = new Date(ms).toISOString();
    }
    t.stamp.dataset.wallMs = String(Math.round(ms));
    // The key frame the time counts from (tests compare it with the recording's).
    t.stamp.dataset.keyMs = String(t.player.keyClock().wall);
  }

  function showOverlay(t, text, kind = "") {
    t.overlay.textContent = text || "";
    t.overlay.className = `overlay ${kind}`;
    t.overlay.hidden = !text;
  }

  function unsupportedText(codec) {
    return `This browser cannot play this camera's video (${codecName(codec) || codec}) live, ` +
      "not even as converted by the server. Showing a still picture every few seconds; recording is not affected.";
  }

  function startStills(t) {
    if (!t.stillTimer) {
      refreshStill(t);
      t.stillTimer = setInterval(() => refreshStill(t), STILL_MS);
    }
  }

  function hideStills(t) {
    stopStill(t);
    t.still.hidden = true;
    t.still.removeAttribute("src");
    t.overlay.classList.remove("banner");
  }

  /** Refreshes the still picture of a camera that cannot play live. */
  async function refreshStill(t) {
    if (gone || t.el.hidden || document.hidden) return;
    try {
      const r = await fetch(`/api/cameras/${encodeURIComponent(t.cam.id)}/snapshot.jpg?width=${t.el.classList.contains("enlarged") ? 1280 : 640}`,
        { credentials: "same-origin", cache: "no-store" });
      // Live video may have come back while this was on its way (hideStills stops the timer).
      if (!r.ok || gone || !t.stillTimer) return;
      const blob = await r.blob();
      if (gone || !t.stillTimer) return;
      const url = URL.createObjectURL(blob);
      if (t.stillUrl) URL.revokeObjectURL(t.stillUrl);
      t.stillUrl = url;
      t.still.src = url;
      t.still.hidden = false;
      t.overlay.classList.add("banner");
    } catch { /* next time */ }
  }

  /**
   * Downloads the camera's latest recorded key frame as a JPEG. The server
   * audits every download (`snapshot`, detail `download`).
   */
  async function saveSnapshot(t, btn) {
    btn.disabled = true;
    try {
      const r = await fetch(`/api/cameras/${encodeURIComponent(t.cam.id)}/snapshot.jpg?download=true`, { credentials: "same-origin", cache: "no-store" });
      if (!r.ok) {
        const body = await r.json().catch(() => ({}));
        throw new Error(body.detail || body.error || `HTTP ${r.status}`);
      }
      const name = /filename="([^"]+)"/.exec(r.headers.get("content-disposition") || "")?.[1] || `${t.cam.id}.jpg`;
      const url = URL.createObjectURL(await r.blob());
      const a = h("a", { href: url, download: name, hidden: true });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60e3);
    } catch (e) {
      if (!gone) ctx.notify(`Could not save a picture of ${t.cam.name}: ${e.message}`, "error");
    } finally {
      btn.disabled = false;
    }
  }

  function stopStill(t) {
    clearInterval(t.stillTimer);
    t.stillTimer = null;
    if (t.stillUrl) URL.revokeObjectURL(t.stillUrl);
    t.stillUrl = null;
  }

  /** Draws a tile's badge and, unless a special message is up, its overlay. */
  function render(t) {
    const p = t.player;
    const st = tileState({
      cam: t.cam,
      playerLive: Boolean(p && p.isLive()),
      stalledSince: p && p.isStalled() ? p.stalledSince() : 0,
      // The picture stopped with the last frame, which may be before the first failed poll.
      nvrDownSince: nvrDownSince && p && p.lastFrameAt ? Math.min(nvrDownSince, p.lastFrameAt) : nvrDownSince,
    });
    t.badge.textContent = st.label;
    t.badge.className = `badge state-${st.kind}`;
    t.el.dataset.tile = st.kind;
    const special = t.unsupported || ["converting", "busy", "error", "ended"].includes(t.el.dataset.player);
    if (special && !nvrDownSince) return;
    // Over a picture the last frame stays visible under a banner; a black screen gets the sentence in the middle.
    showOverlay(t, st.text, st.text ? (t.video.readyState ? "warn banner" : "warn") : "");
  }

  function onPlayerState(t, state, info) {
    t.el.dataset.player = state;
    switch (state) {
      case "connecting": render(t); break;
      case "converting":
        if (!t.video.readyState && !t.stillUrl) {
          showOverlay(t, `This browser cannot play ${codecName(t.cam.codec) || "this camera's codec"}: the server is converting it to H.264…`);
        }
        break;
      case "busy":
        showOverlay(t, `The server's live converters are all in use, so this ${codecName(t.cam.codec) || "camera"} stream cannot be converted for this browser now. ` +
          `Showing a still picture; trying again in ${info.seconds} s.`, t.stillUrl ? "block banner" : "block");
        startStills(t);
        break;
      case "playing":
        if (t.stillTimer || t.stillUrl) hideStills(t);
        t.converted = Boolean(t.player.opts.codec);
        render(t);
        break;
      case "stalled": render(t); break;
      case "reconnecting": render(t); break;
      case "error": showOverlay(t, info.message, "warn"); break;
      case "ended":
        // Stopped for good: the next camera list (a 401 shows the login form)
        // either removes the tile or, if the camera is still allowed, restarts it.
        showOverlay(t, info.signedOut ? "Signed out — log in again."
          : "Your access to cameras changed; checking what you may still see…", "block");
        if (!info.signedOut) refresh();
        break;
      case "unsupported":
        t.unsupported = info.codec;
        showOverlay(t, unsupportedText(info.codec), t.stillUrl ? "block banner" : "block");
        startStills(t);
        break;
      default: break;
    }
  }

  function update(t, cam) {
    t.cam = cam;
    const res = cam.resolution ? `${cam.resolution.width}×${cam.resolution.height}` : "";
    const converted = isHevc(cam.codec) && t.player && t.player.opts.codec === "h264";
    // A conversion's rate is what reaches this browser (the converter may skip
    // frames it cannot keep up with); any other tile shows the camera's own.
    const fps = converted ? t.player.frameRate() : cam.fps;
    const items = [
      ["Codec", codecName(cam.codec) + (converted ? " (shown as H.264)" : "")],
      ["Resolution", res],
      ["Audio", audioText(cam.audio)],
      // Rates describe a running stream; an offline camera's last ones would mislead.
      ["Frame rate", fps && cam.state === "streaming" ? `${fps.toFixed(1)} fps` : ""],
      ["Bitrate", cam.state === "streaming" ? bitrate(cam.bitrate_bps) : ""],
    ].filter(([, v]) => v);
    fill(t.meta, items.map(([k, v]) => h("div", {}, h("dt", { text: k }), h("dd", { text: v }))));
    // The camera's own words (addresses, protocol errors) are for administrators;
    // everyone sees the plain-words state on the tile.
    const err = isAdmin() && cam.last_error && cam.state !== "streaming" ? `Details: ${cam.last_error}` : "";
    const rec = cam.recorder_error ? `Recorder: ${cam.recorder_error}` : "";
    t.errorLine.textContent = [err, rec].filter(Boolean).join(" · ");
    t.errorLine.hidden = !t.errorLine.textContent;
    render(t);
  }

  /** Stream and codec for a tile: the sub stream in a grid of several, H.264 from the server when needed. */
  function playerOptions(t) {
    const several = !enlarged && pageSize() > 1 && shown().length > 1;
    return {
      stream: t.cam.has_sub_stream && several ? "sub" : "main",
      // Known before connecting: ask for H.264 straight away. (Unknown
      // codecs are found out from the init and asked for again.)
      codec: t.cam.codec && !canPlayLive(t.cam.codec) ? "h264" : t.player.opts.codec,
    };
  }

  function startTile(t) {
    if (t.unsupported || t.cam.enabled === false) return;
    const want = playerOptions(t);
    if (!t.player.stopped && (want.stream !== t.player.opts.stream || want.codec !== t.player.opts.codec)) t.player.stop();
    t.player.setOptions(want);
    t.player.start();
  }

  /** A group by name: one of the user's own, or a shared one. */
  const findGroup = (name, isShared) => name && (isShared ? shared || [] : prefs.live.groups).find((x) => x.name === name);

  /** The cameras of the selection (a group, in its order, or all), as tiles. */
  function selection(group = view.group, isShared = view.shared) {
    const g = findGroup(group, isShared);
    if (!g) return [...tiles.values()];
    return g.cameras.map((id) => tiles.get(id)).filter(Boolean);
  }

  /** The group shown becomes the saved preference. */
  function remember() {
    prefs.live.group = view.group;
    prefs.live.group_shared = Boolean(view.group && view.shared);
  }

  /** Fetches the shared groups; redraws if they changed. */
  async function loadShared() {
    const mine = await api("GET", "/api/live/groups").catch(() => null);
    if (gone || !mine) return;
    const before = JSON.stringify(shared);
    shared = mine.groups;
    sharedBtn.hidden = !isAdmin();
    if (JSON.stringify(shared) !== before) applyView();
  }

  /** Tiles per page: the chosen layout, or auto (2×2 for four cameras). */
  function pageSize(n = selection().length) {
    return prefs.live.layout || LAYOUTS.find((l) => l >= n) || 16;
  }

  const pages = (group = view.group, isShared = view.shared) => {
    const n = selection(group, isShared).length;
    return Math.max(1, Math.ceil(n / pageSize(n)));
  };

  /** The tiles on screen now. */
  function shown() {
    if (enlarged && tiles.has(enlarged)) return [tiles.get(enlarged)];
    const sel = selection();
    const n = pageSize(sel.length);
    view.page = Math.min(view.page, Math.max(0, Math.ceil(sel.length / n) - 1));
    return sel.slice(view.page * n, view.page * n + n);
  }

  /** Shows the tiles of the page (or the enlarged one); only they stream. */
  function applyView() {
    // A shared group is only known to be gone once the list has come.
    if (view.group && !findGroup(view.group, view.shared) && (!view.shared || shared)) { view.group = null; view.shared = false; }
    const on = shown();
    const visible = new Set(on);
    const n = pageSize();
    grid.dataset.layout = String(enlarged ? 1 : n);
    grid.style.setProperty("--cols", String(Math.sqrt(enlarged ? 1 : n)));
    // A chosen layout keeps its cells' size on a short page; auto uses the rows it fills.
    const rows = enlarged ? 1 : prefs.live.layout ? Math.sqrt(n) : Math.max(1, Math.ceil(on.length / Math.sqrt(n)));
    grid.style.setProperty("--rows", String(rows));
    on.forEach((t, i) => t.el.style.setProperty("order", String(i)));
    for (const t of tiles.values()) {
      t.el.hidden = !visible.has(t);
      // Hidden tiles stop streaming: bandwidth and decoding go to the ones shown.
      // A tile out of sight is out of hearing too.
      if (t.el.hidden) { t.player.stop(); if (t.sound.on()) t.sound.set(false); }
      else if (!document.hidden) startTile(t); // restarts only if the stream (main/sub) changes
    }
    for (const b of layoutBtns) b.setAttribute("aria-pressed", String(Number(b.dataset.layout) === prefs.live.layout));
    const names = prefs.live.groups.map((g) => g.name);
    const sharedNames = (shared || []).map((g) => g.name);
    const want = JSON.stringify([names, sharedNames]);
    if (groupSel.dataset.options !== want) {
      const opts = (list, isShared) => list.map((g) => h("option", { value: g, text: g, dataset: isShared ? { shared: "1" } : {} }));
      // Without shared groups the picker stays a plain list of the user's own.
      fill(groupSel, h("option", { value: "", text: "All cameras" }),
        sharedNames.length ? [h("optgroup", { label: "My groups" }, opts(names, false)), h("optgroup", { label: "Shared groups" }, opts(sharedNames, true))]
          : opts(names, false));
      groupSel.dataset.options = want;
    }
    const opt = [...groupSel.options].find((o) => o.value === (view.group || "") && Boolean(o.dataset.shared) === Boolean(view.group && view.shared));
    if (opt) opt.selected = true;
    const np = pages();
    pager.hidden = np < 2 || Boolean(enlarged);
    pageLabel.textContent = `Page ${view.page + 1} of ${np}`;
    tourBtn.setAttribute("aria-pressed", String(prefs.live.tour.on));
    tourBtn.textContent = prefs.live.tour.on ? "■ Stop tour" : "▶ Tour";
    if (document.activeElement !== tourSecs) tourSecs.value = String(prefs.live.tour.seconds);
    summarise();
  }

  function turn(d) {
    const np = pages();
    view.page = (view.page + d + np) % np;
    applyView();
  }

  /** One tour step: the next page of the group shown, else the next group's first page. */
  function tourStep() {
    if (gone || enlarged || document.hidden) return;
    const groupsShown = [
      ...prefs.live.groups.filter((g) => selection(g.name, false).length).map((g) => [g.name, false]),
      ...(shared || []).filter((g) => selection(g.name, true).length).map((g) => [g.name, true]),
    ];
    const stops = (groupsShown.length ? groupsShown : [[null, false]])
      .flatMap(([g, sh]) => Array.from({ length: pages(g, sh) }, (_, p) => [g, sh, p]));
    if (stops.length < 2) return;
    const i = stops.findIndex(([g, sh, p]) => g === view.group && sh === Boolean(view.group && view.shared) && p === view.page);
    [view.group, view.shared, view.page] = stops[(i + 1) % stops.length];
    applyView();
  }

  function setTour() {
    clearInterval(tourTimer);
    tourTimer = prefs.live.tour.on ? setInterval(tourStep, prefs.live.tour.seconds * 1000) : null;
    applyView();
  }

  /** Saves the preferences as they are now, after any save still on its way. */
  function save() {
    const doc = structuredClone(prefs);
    saving = saving.then(() => api("PUT", "/api/me/prefs", doc)).then(() => {
      grid.dataset.saved = String(++saves);
    }, (e) => {
      if (!gone && e.status !== 401) ctx.notify(`Could not save your layout: ${e.message}`, "error");
    });
  }

  /** Video wall: full screen with the pictures only; leaving full screen (Escape) leaves it. */
  function setWall(on) {
    document.body.classList.toggle("wall", on);
    wallBtn.setAttribute("aria-pressed", String(on));
    if (on && !document.fullscreenElement) document.documentElement.requestFullscreen?.().catch(() => {});
    if (!on && document.fullscreenElement) document.exitFullscreen?.().catch(() => {});
  }

  function onFullscreen() {
    if (!document.fullscreenElement && document.body.classList.contains("wall")) setWall(false);
  }

  /** The enlarged view moves on to the next (1) or previous (-1) camera of the selection. */
  function step(d) {
    const sel = selection();
    const i = sel.findIndex((x) => x.cam.id === enlarged);
    if (i < 0 || sel.length < 2) return;
    enlarge(sel[(i + d + sel.length) % sel.length].cam.id);
  }

  /** Full screen for the enlarged picture (the grid holding it, so a swipe keeps it full screen). */
  function toggleFullscreen() {
    if (document.fullscreenElement) document.exitFullscreen?.().catch(() => {});
    else grid.requestFullscreen?.().catch(() => {});
  }

  function enlarge(id) {
    enlarged = id;
    if (!id && document.fullscreenElement === grid) document.exitFullscreen?.().catch(() => {});
    grid.classList.toggle("single", Boolean(id));
    backBtn.hidden = !id;
    for (const [cid, t] of tiles) {
      const on = cid === id;
      t.el.classList.toggle("enlarged", on);
      t.enlargeBtn.setAttribute("aria-pressed", String(on));
      t.enlargeBtn.setAttribute("aria-label", `${on ? "Back from" : "Enlarge"} ${t.cam.name}`);
      t.enlargeBtn.textContent = on ? "⤡" : "⤢";
    }
    applyView();
    if (id) tiles.get(id)?.enlargeBtn.focus();
    showPtz(id);
  }

  /** PTZ controls under the enlarged tile, for cameras and users that have them. */
  let ptzEl = null;
  let me = null;
  async function showPtz(id) {
    ptzEl?.stop();
    ptzEl?.remove();
    ptzEl = null;
    const t = id && tiles.get(id);
    if (!t || !t.cam.onvif) return;
    me ??= (await api("GET", "/api/me").catch(() => null))?.user;
    const el = await ptzControls(t.cam, me);
    if (el && enlarged === id && !ptzEl) {
      ptzEl = el;
      t.el.append(el);
    }
  }

  /** Opens synchronised playback of `ids` (the cameras shown, at most 16), `back` ms ago. */
  function replay(ids = shown().map((t) => t.cam.id).slice(0, 16), back = REPLAY_MS) {
    const q = new URLSearchParams({ cameras: ids.join(","), t: new Date(Date.now() - back).toISOString(), play: "1" });
    location.hash = `#/playback?${q}`;
  }

  function onKey(ev) {
    if (ev.key === "Escape" && document.body.classList.contains("wall")) setWall(false);
    else if (ev.key === "Escape" && enlarged) {
      const id = enlarged;
      enlarge(null);
      tiles.get(id)?.enlargeBtn.focus();
    }
  }

  async function refresh() {
    let data;
    try {
      data = await api("GET", "/api/cameras");
    } catch (e) {
      if (!gone && e.status !== 401) {
        // The NVR itself is down or unreachable: no tile may go on saying "Live".
        if (!nvrDownSince) nvrDownSince = Date.now();
        status.textContent = `Could not reach the NVR: ${e.message}`;
        for (const t of tiles.values()) render(t);
      }
      return;
    }
    if (gone) return;
    nvrDownSince = 0;
    // Shared groups change with an admin's edit or the user's access: follow them.
    loadShared();
    const cams = data.cameras;
    const ids = new Set(cams.map((c) => c.id));
    for (const [id, t] of tiles) {
      if (!ids.has(id)) { t.player.stop(); stopStill(t); t.el.remove(); tiles.delete(id); }
    }
    for (const cam of cams) {
      let t = tiles.get(cam.id);
      if (!t) {
        t = tileFor(cam);
        tiles.set(cam.id, t);
        t.el.hidden = true;
        grid.append(t.el);
        update(t, cam);
      } else {
        update(t, cam);
      }
    }
    if (enlarged && !tiles.has(enlarged)) enlarge(null);
    // Start new tiles of the page; switch running ones between main and sub
    // stream, or to H.264 once the camera's codec turns out to need it.
    applyView();
  }

  /** The line above the grid: what the camera states and this browser's players say. */
  function summarise() {
    const n = tiles.size;
    if (!n) {
      status.textContent = "No cameras are configured for you. An administrator can give you access.";
      return;
    }
    if (nvrDownSince) return;
    const all = [...tiles.values()];
    const live = all.filter((t) => t.player && t.player.isLive()).length;
    const offline = all.filter((t) => ["backoff", "auth_failed"].includes(t.cam.state)).length;
    const parts = [`${n} camera${n === 1 ? "" : "s"}`];
    if (all.some((t) => !t.el.hidden)) parts.push(`${live} live here`);
    if (offline) parts.push(`${offline} offline`);
    status.textContent = `${parts.join(", ")}.`;
  }

  function tick() {
    if (gone) return;
    for (const t of tiles.values()) {
      // A conversion's frame rate is measured here: its details follow it.
      if (!t.el.hidden && t.player.opts.codec === "h264") update(t, t.cam);
      else render(t);
      drawClock(t);
    }
    summarise();
  }

  function onVisibility() {
    // A hidden tab would queue frames it cannot play; stop and resume instead.
    for (const t of tiles.values()) {
      if (document.hidden) t.player.stop();
      else if (!t.el.hidden && t.player.stopped) startTile(t);
    }
  }

  document.addEventListener("keydown", onKey);
  document.addEventListener("visibilitychange", onVisibility);
  document.addEventListener("fullscreenchange", onFullscreen);
  // The user's layout first, so the first tiles started are the ones shown.
  Promise.all([api("GET", "/api/me/prefs").catch(() => null), loadShared()]).then(([p]) => {
    if (gone) return;
    if (p && p.live) prefs = { ...p, live: { ...DEFAULT_PREFS.live, ...p.live, tour: { ...DEFAULT_PREFS.live.tour, ...p.live.tour } } };
    view.group = prefs.live.group;
    view.shared = Boolean(prefs.live.group_shared);
    setTour();
    refresh();
    timer = setInterval(refresh, REFRESH_MS);
    ticker = setInterval(tick, TICK_MS);
  });

  return () => {
    gone = true;
    clearInterval(timer);
    clearInterval(ticker);
    clearInterval(tourTimer);
    setWall(false);
    document.removeEventListener("keydown", onKey);
    document.removeEventListener("visibilitychange", onVisibility);
    document.removeEventListener("fullscreenchange", onFullscreen);
    for (const t of tiles.values()) { t.player.stop(); stopStill(t); }
    tiles.clear();
  };
}

