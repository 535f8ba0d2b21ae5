// The converter pool seen from Chromium (which cannot play H.265 here), against
// the real server with a pool of N converters and N + 1 H.265 cameras: the live
// grid plays N tiles and shows the last one as a still picture saying the
// converters are in use; a second window watching the same cameras adds no
// conversion; and playback of the last moments of a camera being converted
// live plays from that conversion although the pool is full. The playback time
// is typed into the Time field and gone to.
//
//   node tests/ui/pool.mjs BASE_URL CONFIG_JSON
//
// CONFIG_JSON: {"admin": [name, pw], "cameras": [ids], "pool": N, "screens": dir}

import { join } from "node:path";
import { check, launch, login, summary } from "./common.mjs";

const [base, cfgText] = process.argv.slice(2);
const cfg = JSON.parse(cfgText);
const origin = new URL(base).origin;
const { ctx, page, close } = await launch();
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
const shot = (p, n) => p.screenshot({ path: join(cfg.screens, `${n}.png`) });

async function metrics() {
  const text = await (await ctx.request.get(`${origin}/metrics`)).text();
  const m = {};
  for (const l of text.split("\n")) {
    const [k, v] = l.split(" ");
    if (k && !k.startsWith("#") && v !== undefined) m[k] = Number(v);
  }
  return m;
}

/** Tiles of the live grid by what their player does: {camera: state}. */
const tileStates = (p) => p.$$eval("#live-grid .tile", (ts) => Object.fromEntries(ts.filter((t) => !t.hidden)
  .map((t) => {
    const v = t.querySelector("video");
    const img = t.querySelector("img.still");
    const playing = t.dataset.player === "playing" && v && v.readyState >= 2;
    const still = t.dataset.player === "busy" && img && !img.hidden && img.complete && img.naturalWidth > 0;
    return [t.dataset.camera, playing ? "playing" : still ? "busy-still" : t.dataset.player || "?"];
  })));

const settled = (p) => p.waitForFunction(([n, total]) => {
  const ts = [...document.querySelectorAll("#live-grid .tile")].filter((t) => !t.hidden);
  const playing = ts.filter((t) => t.dataset.player === "playing" && t.querySelector("video").readyState >= 2).length;
  const still = ts.filter((t) => {
    const img = t.querySelector("img.still");
    return t.dataset.player === "busy" && img && !img.hidden && img.complete && img.naturalWidth > 0;
  }).length;
  return ts.length === total && playing === n && still === total - n;
}, [cfg.pool, cfg.cameras.length], { timeout: 90000 });

await login(page, base, cfg.admin);
await page.goto(`${base}#/live`);
await settled(page);
const first = await tileStates(page);
const converted = Object.keys(first).filter((c) => first[c] === "playing");
const busy = Object.keys(first).filter((c) => first[c] === "busy-still");
check(converted.length === cfg.pool && busy.length === cfg.cameras.length - cfg.pool,
  `a pool of ${cfg.pool}: ${cfg.pool} H.265 tiles play converted, the next shows a still picture`, first);
const overlay = await page.textContent(`.tile[data-camera="${busy[0]}"] .overlay`);
check(/live converters are all in use/.test(overlay), "the busy tile says the converters are in use", overlay);
let m = await metrics();
check(m.cleannvr_transcodes_limit === cfg.pool && m.cleannvr_live_transcodes_active === cfg.pool && m.cleannvr_transcodes_active === cfg.pool,
  `/metrics: the pool of ${cfg.pool} is full with live conversions`, m);
await shot(page, "pool-live-full");

// A second window on the same cameras: every converted camera plays there too, from the
// same conversions (more viewers, no more conversions).
const second = await ctx.newPage();
second.on("pageerror", (e) => errors.push(String(e)));
await second.goto(`${base}#/live`);
await settled(second);
const again = await tileStates(second);
check(converted.every((c) => again[c] === "playing"), "the second window plays the converted cameras too", again);
m = await metrics();
check(m.cleannvr_live_transcodes_active === cfg.pool && m.cleannvr_live_transcode_viewers === 2 * cfg.pool,
  `/metrics: ${2 * cfg.pool} viewers share ${cfg.pool} conversions`, m);

// Playback of the last moments of a converted camera, in the second window, with the pool
// still full: served from its live conversion. The time is typed into the Time field.
const cam = converted[0];
const answers = [];
second.on("response", (r) => {
  if (r.url().includes(`/api/cameras/${cam}/video.mp4`) && r.url().includes("codec=h264")) {
    answers.push({ method: r.request().method(), status: r.status(), source: r.headers()["x-transcode-source"] || "" });
  }
});
await second.goto(`${base}#/playback`);
await second.locator("#pb-camera option").first().waitFor({ state: "attached" });
await second.selectOption("#pb-camera", cam);
await second.locator(".timeline .range").first().waitFor({ timeout: 30000 });
// The server runs in this machine's zone, as this script and the browser do.
const at = Date.now() - 6000;
const hms = new Date(at).toTimeString().slice(0, 8);
await second.fill("#pb-time", hms);
check(await second.inputValue("#pb-time") === hms, `the Time field keeps a typed time (${hms}) until it is gone to`);
// What the tile asked for before (where the clock was: older footage, which needs a
// converter of its own and so was refused) does not count.
answers.length = 0;
await second.click("form:has(#pb-time) button[type=submit]");
await second.waitForFunction(() => {
  const t = document.querySelector("#pb-grid .pb-tile");
  const v = t && t.querySelector("video");
  return t.dataset.state === "playing" && v.readyState >= 2 && v.currentTime > 0.5;
}, null, { timeout: 60000 });
const shown = await second.evaluate(() => [document.querySelector("#pb-now").dataset.t, document.querySelector("#pb-time").value]);
check(Math.abs(Number(shown[0]) - at) < 15000, `playback near live plays the moment asked for (${((Number(shown[0]) - at) / 1000).toFixed(1)} s after it)`, shown);
const served = answers.filter((a) => a.method === "GET" && a.status === 200);
check(served.length > 0 && served.every((a) => a.source === "live"), "near-live playback is served from the live conversion", answers);
m = await metrics();
check(m.cleannvr_transcodes_active === cfg.pool && m.cleannvr_transcodes_shared_total >= 1,
  "/metrics: no conversion started for it (still the pool's, one shared playback at least)", m);
await shot(second, "pool-playback-shared");

check(errors.length === 0, "no page errors", errors);
await close();
console.log(summary());
