// The UI and the offline player in Firefox (Debian's firefox-esr), driven by
// puppeteer-core over WebDriver BiDi (Playwright cannot drive a stock Firefox):
// log in, the live tile plays through MSE, playback plays and seeks, and an
// exported package's player.html, opened from file:// with no network, plays
// and verifies every hash and the Ed25519 signature.
//
//   node tests/ui/firefox.mjs BASE_URL CONFIG_JSON
//
// CONFIG_JSON: {"admin": [name, pw], "camera": id, "pkg": DIR, "screens": DIR}
// (`pkg`: an unpacked package.zip of an H.264 export of `camera`.)
// Prints one line per check and "ui: N passed, 0 failed" at the end.

import puppeteer from "puppeteer-core";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { check, summary } from "./common.mjs";

const [base, cfgText] = process.argv.slice(2);
const cfg = JSON.parse(cfgText);
const origin = new URL(base).origin;
const FIREFOX = process.env.FIREFOX || "/usr/bin/firefox-esr";

const t0 = Date.now();
/** Elapsed time at each section, so a slow run shows where the time went. */
const mark = (what) => console.log(`note: ${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}`);

const profile = mkdtempSync(join(tmpdir(), "cleannvr-firefox-"));
const browser = await puppeteer.launch({
  browser: "firefox",
  executablePath: FIREFOX,
  headless: true,
  userDataDir: profile,
  defaultViewport: { width: 1280, height: 900 },
  extraPrefsFirefox: {
    // Everything but loopback (never proxied) goes to a closed port: the only
    // server this browser can reach is the one under test, and the offline
    // player has no network at all to fall back on.
    "network.proxy.type": 1,
    "network.proxy.http": "127.0.0.1",
    "network.proxy.http_port": 9,
    "network.proxy.ssl": "127.0.0.1",
    "network.proxy.ssl_port": 9,
    "network.proxy.share_proxy_settings": true,
    "media.autoplay.default": 0,
  },
});
const errors = [];
const offOrigin = [];
try {
  const page = (await browser.pages())[0] || (await browser.newPage());
  page.setDefaultTimeout(60000);
  page.on("pageerror", (e) => errors.push(`uncaught: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("request", (r) => {
    const u = r.url();
    if (!u.startsWith(origin) && !u.startsWith(origin.replace(/^http/, "ws")) && !/^(file|blob|data|about):/.test(u)) offOrigin.push(u);
  });
  const version = await browser.version();
  check(/firefox/i.test(version), `the browser is Firefox (${version})`, version);

  mark("Login");
  // --- Login --------------------------------------------------------------
  await page.goto(base);
  await page.waitForSelector("#login-view", { visible: true });
  await page.type("#login-user", cfg.admin[0]);
  await page.type("#login-pass", cfg.admin[1]);
  await page.click("#login button[type=submit]");
  await page.waitForSelector("#nav", { visible: true });
  const who = await page.$eval("#who", (e) => e.textContent);
  check(who.includes(cfg.admin[0]) && who.includes("admin"), "logs in and shows the user and role", who);

  mark("Live");
  // --- Live: the tile plays through Media Source Extensions -----------------
  const sel = `.tile[data-camera="${cfg.camera}"] video`;
  await page.waitForFunction((s) => {
    const v = document.querySelector(s);
    return v && v.buffered.length > 0 && v.readyState >= 2 && v.currentTime > 0;
  }, { timeout: 90000, polling: 200 }, sel);
  const a = await page.$eval(sel, (v) => ({ t: v.currentTime, w: v.videoWidth, h: v.videoHeight, src: v.getAttribute("src") }));
  // Progress, polled with a generous deadline (speed is measured in BENCHMARKS.md).
  await page.waitForFunction((s, t) => document.querySelector(s).currentTime > t + 1.5, { timeout: 90000, polling: 200 }, sel, a.t);
  const b = await page.$eval(sel, (v) => ({ t: v.currentTime, paused: v.paused, error: v.error && v.error.message }));
  check(a.w > 0 && a.h > 0, `live: the tile has a picture (${a.w}×${a.h})`, a);
  check(a.src && a.src.startsWith("blob:"), "live: the tile plays a MediaSource (blob: URL), not a file", a.src);
  check(b.t > a.t + 1.5 && !b.paused && !b.error, `live: currentTime advances (${a.t.toFixed(2)} -> ${b.t.toFixed(2)} s) without a media error`, b);
  await page.screenshot({ path: join(cfg.screens, "1-live.png") });

  mark("Playback");
  // --- Playback: plays, then seeks by a click on the timeline ---------------
  await page.goto(`${base}#/playback`);
  await page.waitForSelector("#pb-timeline .range");
  /** The first tile's presented wall time (ms), the shared clock, and its video. */
  const tile = () => page.evaluate(() => {
    const el = document.querySelector("#pb-grid .pb-tile");
    const v = el && el.querySelector("video");
    const zero = Number(el && el.dataset.zero);
    return {
      state: el && el.dataset.state, t: v && v.currentTime, ready: v && v.readyState, seeking: v && v.seeking,
      w: v && v.videoWidth, src: v && v.currentSrc, error: v && v.error && v.error.message,
      presented: el && el.dataset.zero && Number.isFinite(zero) ? zero + v.currentTime * 1000 : null,
      clock: document.querySelector("#pb-grid").syncClock.now(),
    };
  });
  const ranges = await page.$$eval("#pb-timeline .range", (rs) => rs.map((r) => [Number(r.dataset.start), Number(r.dataset.end)]));
  const [r0, r1] = ranges.reduce((m, r) => (r[1] - r[0] > m[1] - m[0] ? r : m));
  check(r1 - r0 >= 10000, `playback: the timeline shows a recorded range of ${((r1 - r0) / 1000).toFixed(1)} s`, ranges);
  // Start near the beginning of the range, then seek to near its end.
  const clickAt = async (t) => {
    // The timeline redraws as recording goes on: read the range's box and its times together.
    const box = await page.evaluate((start) => {
      const r = [...document.querySelectorAll("#pb-timeline .range")].find((e) => Number(e.dataset.start) === start);
      const b = r.getBoundingClientRect();
      return { x: b.x, y: b.y, w: b.width, h: b.height, start: Number(r.dataset.start), end: Number(r.dataset.end) };
    }, r0);
    await page.mouse.click(box.x + ((t - box.start) / (box.end - box.start)) * box.w, box.y + box.h / 2);
  };
  /** Waits until the tile plays at or after `from` ms (wall time) and media time moves on. */
  const playsFrom = async (from, what) => {
    await page.waitForFunction((f) => {
      const el = document.querySelector("#pb-grid .pb-tile");
      const v = el && el.querySelector("video");
      return v && el.dataset.state === "playing" && !v.seeking && v.readyState >= 2 && el.dataset.zero
        && Number(el.dataset.zero) + v.currentTime * 1000 >= f;
    }, { timeout: 60000, polling: 100 }, from);
    const p0 = await tile();
    await page.waitForFunction((t0, s0) => {
      const v = document.querySelector("#pb-grid .pb-tile video");
      return v.currentSrc === s0 ? v.currentTime > t0 + 1 : v.currentTime > 1;
    }, { timeout: 60000, polling: 100 }, p0.t, p0.src);
    const p1 = await tile();
    check(p1.w > 0 && !p1.error && p1.src.startsWith(`${origin}/api/cameras/${cfg.camera}/video.mp4?`),
      `${what}: the recording decodes from video.mp4 (${p1.w} px wide)`, p1);
    return [p0, p1];
  };
  const early = r0 + 1500;
  await clickAt(early);
  const [e0] = await playsFrom(early - 1000, "playback");
  check(e0.presented < early + 5000, "playback: the picture is from where the timeline was clicked", { early, e0 });
  await page.screenshot({ path: join(cfg.screens, "2-playback.png") });
  const late = r0 + Math.min(r1 - r0 - 3000, 9000);
  await clickAt(late);
  const [s0, s1] = await playsFrom(late - 1000, "playback after a seek");
  check(s0.presented >= late - 1000 && s0.presented < late + 4000 && Math.abs(s0.presented - s0.clock) < 1000,
    `playback: a click later on the timeline seeks there (+${((late - early) / 1000).toFixed(1)} s) and the picture follows the clock`, { late, s0 });
  check(s1.presented > s0.presented, "playback: and plays on from there", { s0, s1 });
  const shown = await page.$eval("#pb-now", (e) => e.textContent);
  check(/\d\d:\d\d:\d\d/.test(shown), `playback: the picture's date and time are shown (${shown})`, shown);
  await page.screenshot({ path: join(cfg.screens, "3-seeked.png") });

  mark("The export's offline player");
  // --- The export's offline player, from file:// ----------------------------
  const manifest = JSON.parse(readFileSync(join(cfg.pkg, "manifest.json"), "utf8"));
  await page.goto(pathToFileURL(join(cfg.pkg, "player.html")).href);
  await page.waitForFunction(() => document.getElementById("video").readyState >= 2, { timeout: 60000, polling: 200 });
  const clockMs = () => page.$eval("#clock-time", (e) => Number(e.dataset.ms));
  const c0 = await clockMs();
  const startMs = Date.parse(manifest.cameras[0].files[0].presents.start);
  check(Math.abs(c0 - startMs) < 1000, "player: opens on the first file with the clock at its presented start", { c0, startMs });
  await page.click("#play");
  await page.waitForFunction(() => document.getElementById("video").currentTime > 1.2, { timeout: 90000, polling: 200 });
  await page.click("#play");
  await page.waitForFunction(() => document.getElementById("video").paused, { polling: 100 });
  await page.waitForFunction((m) => Number(document.getElementById("clock-time").dataset.ms) > m + 1000, { timeout: 10000, polling: 100 }, c0)
    .catch(() => {});
  const played = await page.evaluate(() => ({ t: document.getElementById("video").currentTime, ms: Number(document.getElementById("clock-time").dataset.ms),
    time: document.getElementById("clock-time").textContent, zone: document.getElementById("clock-zone").textContent }));
  check(played.t > 1.2 && played.ms - c0 > 1000, `player: the video plays and the clock follows it (${played.time} ${played.zone})`, played);
  await page.screenshot({ path: join(cfg.screens, "4-player.png"), fullPage: true });
  const input = await page.$("#pick-files");
  await input.uploadFile(...readdirSync(cfg.pkg).map((n) => join(cfg.pkg, n)));
  await page.waitForFunction(() => document.getElementById("verdict").dataset.state, { timeout: 120000, polling: 200 });
  const v = await page.evaluate(() => ({
    state: document.getElementById("verdict").dataset.state,
    text: document.getElementById("verdict").textContent,
    results: document.getElementById("results").textContent,
    rows: [...document.querySelectorAll("#files tbody tr")].map((r) => [r.dataset.file, r.querySelector(".status").textContent]),
  }));
  const mp4s = manifest.cameras.flatMap((c) => c.files.map((f) => f.file));
  check(v.state === "ok" && v.text.startsWith("verified"), "player: the package verifies in Firefox", v);
  check(v.rows.length === mp4s.length && v.rows.every(([, s]) => s === "verified"), "player: every video's SHA-256 verified", v.rows);
  check(v.results.includes("signature valid"), "player: Firefox's WebCrypto checks the Ed25519 signature", v.results);
  await page.screenshot({ path: join(cfg.screens, "5-verified.png"), fullPage: true });

  mark("done");
  check(offOrigin.length === 0, "no request left the server under test or file://", offOrigin);
  check(errors.length === 0, "no script errors", errors);
  console.log(summary());
} finally {
  await browser.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
