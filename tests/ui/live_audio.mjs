// Live sound in Debian's Chromium: a tile's sound toggle against cameras of
// the GStreamer peer that send AAC, G.711 (converted to AAC by cleannvr) and
// sound cleannvr does not carry (L16: video only).
//
//   node tests/ui/live_audio.mjs BASE_URL CONFIG_JSON
//
// CONFIG_JSON: {"admin":[name,pw], "aac": id, "pcmu": id, "silent": id, "gaps": id, "screens": dir}
// `gaps` is a camera whose sound stops every other 4 s while its picture goes on.
// Prints "ok - ..." per check and "ui: N passed, 0 failed" at the end.

import { join } from "node:path";
import { check, launch, login, summary } from "./common.mjs";

const [base, cfgText] = process.argv.slice(2);
const cfg = JSON.parse(cfgText);
const tile = (id) => `.tile[data-camera="${id}"]`;

/** What a tile's picture and sound toggle say now. */
async function state(page, id) {
  return page.$eval(tile(id), (t) => {
    const v = t.querySelector("video");
    const b = t.querySelector(".tile-sound");
    return {
      badge: t.querySelector(".badge").textContent,
      t: v.currentTime,
      ready: v.readyState,
      muted: v.muted,
      decoded: v.webkitAudioDecodedByteCount,
      toggle: b && !b.hidden ? { pressed: b.getAttribute("aria-pressed"), label: b.getAttribute("aria-label"), title: b.title } : null,
    };
  });
}

/** Waits until the tile plays live (picture moving, badge Live). */
async function live(page, id) {
  await page.waitForFunction((s) => {
    const t = document.querySelector(s);
    const v = t && t.querySelector("video");
    return v && v.readyState >= 2 && v.currentTime > 0.5 && t.querySelector(".badge").textContent === "Live";
  }, tile(id), { timeout: 120000 });
}

/**
 * With the tile's sound on for a while: its decoded sound grows and its
 * picture's clock keeps moving on (sound never holds the picture).
 */
async function hears(page, id, what) {
  const a = await state(page, id);
  await page.waitForFunction(([s, d0, t0]) => {
    const v = document.querySelector(s).querySelector("video");
    return v.webkitAudioDecodedByteCount > d0 && v.currentTime - t0 >= 3;
  }, [tile(id), a.decoded, a.t], { timeout: 30000 }).catch(() => {});
  const b = await state(page, id);
  check(!b.muted && b.decoded > 0 && b.decoded > a.decoded,
    `${what}: after unmuting, the browser decodes its sound (webkitAudioDecodedByteCount ${a.decoded} -> ${b.decoded})`, b);
  check(b.t - a.t >= 3, `${what}: the picture moves on with sound on (currentTime ${a.t.toFixed(2)} -> ${b.t.toFixed(2)} s)`, b);
  return b;
}

const { page, close } = await launch(["--autoplay-policy=user-gesture-required"]);
const errors = [];
try {
  page.on("pageerror", (e) => errors.push(e.message));
  await login(page, base, cfg.admin);
  await page.goto(`${base}#/live`);
  for (const id of [cfg.aac, cfg.pcmu, cfg.silent, cfg.gaps]) await live(page, id);

  // --- Muted by default, toggle only where there is sound ----------------
  for (const id of [cfg.aac, cfg.pcmu]) {
    await page.waitForSelector(`${tile(id)} .tile-sound:not([hidden])`, { timeout: 30000 });
    const s = await state(page, id);
    check(s.muted && s.toggle && s.toggle.pressed === "false" && /^Turn on the sound of /.test(s.toggle.label),
      `${id}: a camera with sound has a sound toggle, off, and its tile starts muted`, s);
  }
  const silent = await state(page, cfg.silent);
  check(silent.toggle === null && silent.muted, `${cfg.silent}: a camera whose sound cleannvr does not carry has no sound toggle`, silent);
  check(silent.decoded === 0, `${cfg.silent}: no sound reaches the browser for it`, silent);

  // --- Sound on for the AAC camera ------------------------------------------
  await page.click(`${tile(cfg.aac)} .tile-sound`);
  const on = await state(page, cfg.aac);
  check(!on.muted && on.toggle.pressed === "true" && /^Turn off the sound of /.test(on.toggle.label),
    `${cfg.aac}: the toggle turns the sound on and says so`, on);
  await hears(page, cfg.aac, `${cfg.aac} (AAC)`);
  await page.locator(tile(cfg.aac)).screenshot({ path: join(cfg.screens, "tile-sound-on.png") });

  // --- One tile audible at a time: the G.711 camera takes over ---------------
  await page.click(`${tile(cfg.pcmu)} .tile-sound`);
  const [aac, pcmu] = [await state(page, cfg.aac), await state(page, cfg.pcmu)];
  check(aac.muted && aac.toggle.pressed === "false" && !pcmu.muted && pcmu.toggle.pressed === "true",
    "turning on another tile's sound turns the first one's off", { aac, pcmu });
  await hears(page, cfg.pcmu, `${cfg.pcmu} (G.711 converted to AAC)`);
  const other = await state(page, cfg.aac);
  check(other.t - aac.t >= 2, `${cfg.aac}: the muted tile plays on`, { before: aac, after: other });

  // --- And off again ------------------------------------------------------------
  await page.click(`${tile(cfg.pcmu)} .tile-sound`);
  const off = await state(page, cfg.pcmu);
  check(off.muted && off.toggle.pressed === "false", `${cfg.pcmu}: the toggle turns the sound off again`, off);

  // --- Sound that comes and goes never holds the picture ------------------------
  // Over 12 s the camera's sound stops and resumes at least once: the picture
  // may hitch for under a second as it stops, no more, and the tile stays Live.
  await page.click(`${tile(cfg.gaps)} .tile-sound`);
  const g0 = await state(page, cfg.gaps);
  const t0 = Date.now();
  let slowest = 0;
  let last = g0.t;
  let lastMoved = Date.now();
  while (Date.now() - t0 < 12000) {
    await page.waitForTimeout(200);
    const now = await state(page, cfg.gaps);
    if (now.t !== last) { last = now.t; lastMoved = Date.now(); }
    slowest = Math.max(slowest, Date.now() - lastMoved);
  }
  const g1 = await state(page, cfg.gaps);
  const wall = (Date.now() - t0) / 1000;
  check(g1.t - g0.t >= wall - 3 && slowest < 2000 && g1.badge === "Live" && g1.decoded > g0.decoded,
    `${cfg.gaps}: with its sound coming and going, the picture moves on (currentTime ${g0.t.toFixed(2)} -> ${g1.t.toFixed(2)} s in ${wall.toFixed(1)} s, longest still ${slowest} ms) and its sound is decoded`,
    { g0, g1, slowest });
  await page.screenshot({ path: join(cfg.screens, "live-grid-sound.png") });
  check(errors.length === 0, "no uncaught page errors", errors);
  console.log(summary());
} catch (e) {
  console.log(`not ok - ${e.message}`);
  process.exitCode = 1;
} finally {
  await close();
}
