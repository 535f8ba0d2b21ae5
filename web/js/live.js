// Live view: one tile per camera the user may see, each playing the
// camera's live WebSocket through MSE. Click a picture (or its Enlarge
// button, reachable by keyboard) to show it alone; Escape returns to the grid.

import { api } from "./api.js";
import { h, fill } from "./dom.js";
import { LivePlayer, canPlayLive } from "./player.js";
import { audioText, bitrate, codecName, isHevc, tileState } from "./format.js";
import { ptzControls } from "./ptz.js";

const REFRESH_MS = 5000;
/** Badges and countdowns are redrawn this often, so they never say "Live" for long after frames stop. */
const TICK_MS = 1000;
/** Still pictures for cameras this browser cannot play live. */
const STILL_MS = 5000;
/** How far back "Replay" starts. */
const REPLAY_MS = 5 * 60e3;

export function mount(root, ctx) {
  const grid = h("div", { class: "grid", id: "live-grid" });
  const status = h("p", { class: "muted", role: "status" });
  const backBtn = h("button", { type: "button", class: "quiet", hidden: true, text: "Back to all cameras", onclick: () => enlarge(null) });
  const replayBtn = h("button", { type: "button", id: "live-replay", text: "⟲ Replay from 5 minutes ago", title: "Synchronised playback of the cameras shown, from 5 minutes ago", onclick: () => replay() });
  fill(root,
    h("div", { class: "view-head" }, h("h1", { text: "Live" }), backBtn, replayBtn),
    status,
    grid);

  /** id → {cam, el, video, overlay, player, ...} */
  const tiles = new Map();
  let enlarged = null;
  let timer = null;
  let ticker = null;
  let gone = false;
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
    const meta = h("dl", { class: "meta" });
    const errorLine = h("p", { class: "tile-error" });
    const still = h("img", { class: "still", alt: `Latest still picture from ${cam.name}`, hidden: true });
    const screen = h("div", { class: "screen" }, video, still, overlay);
    const el = h("article", { class: "tile", "aria-labelledby": nameId, dataset: { camera: cam.id } },
      h("div", { class: "tile-head" }, h("h2", { id: nameId, text: cam.name }), badge, enlargeBtn),
      screen, meta, errorLine);
    const t = { cam, el, video, overlay, badge, meta, errorLine, enlargeBtn, player: null, unsupported: null, still, stillTimer: null, stillUrl: null };
    enlargeBtn.addEventListener("click", () => enlarge(enlarged === cam.id ? null : cam.id));
    screen.addEventListener("click", () => enlarge(enlarged === cam.id ? null : cam.id));
    t.player = new LivePlayer(video, cam.id, (state, info) => onPlayerState(t, state, info), () => api("GET", "/api/me"));
    return t;
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
    const items = [
      ["Codec", codecName(cam.codec) + (isHevc(cam.codec) && t.player && t.player.opts.codec === "h264" ? " (shown as H.264)" : "")],
      ["Resolution", res],
      ["Audio", audioText(cam.audio)],
      // Rates describe a running stream; an offline camera's last ones would mislead.
      ["Frame rate", cam.fps && cam.state === "streaming" ? `${cam.fps.toFixed(1)} fps` : ""],
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
    const several = !enlarged && tiles.size > 1;
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

  function enlarge(id) {
    enlarged = id;
    grid.classList.toggle("single", Boolean(id));
    backBtn.hidden = !id;
    for (const [cid, t] of tiles) {
      const on = cid === id;
      t.el.classList.toggle("enlarged", on);
      t.el.hidden = Boolean(id) && !on;
      t.enlargeBtn.setAttribute("aria-pressed", String(on));
      t.enlargeBtn.setAttribute("aria-label", `${on ? "Back from" : "Enlarge"} ${t.cam.name}`);
      t.enlargeBtn.textContent = on ? "⤡" : "⤢";
      // Hidden tiles stop streaming: bandwidth and decoding go to the one shown.
      if (t.el.hidden) t.player.stop();
      else startTile(t); // restarts only if the stream (main/sub) changes
    }
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

  /** Opens synchronised playback of the cameras shown (at most 16), 5 minutes back. */
  function replay() {
    const ids = [...tiles.values()].filter((t) => !t.el.hidden).map((t) => t.cam.id).slice(0, 16);
    const q = new URLSearchParams({ cameras: ids.join(","), t: new Date(Date.now() - REPLAY_MS).toISOString(), play: "1" });
    location.hash = `#/playback?${q}`;
  }

  function onKey(ev) {
    if (ev.key === "Escape" && enlarged) {
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
        grid.append(t.el);
        update(t, cam);
        if (enlarged) t.el.hidden = true;
      } else {
        update(t, cam);
      }
    }
    // Start new tiles; switch running ones between main and sub stream, or
    // to H.264 once the camera's codec turns out to need it.
    if (!document.hidden) for (const t of tiles.values()) if (!t.el.hidden) startTile(t);
    summarise();
    grid.dataset.count = String(Math.min(cams.length, 16));
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
    for (const t of tiles.values()) render(t);
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
  refresh();
  timer = setInterval(refresh, REFRESH_MS);
  ticker = setInterval(tick, TICK_MS);

  return () => {
    gone = true;
    clearInterval(timer);
    clearInterval(ticker);
    document.removeEventListener("keydown", onKey);
    document.removeEventListener("visibilitychange", onVisibility);
    for (const t of tiles.values()) { t.player.stop(); stopStill(t); }
    tiles.clear();
  };
}

