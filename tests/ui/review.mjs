// Synchronised playback in Debian's Chromium against cleannvr recording the
// GStreamer RTSP peer (tests/ui_review.rs):
//
//   node tests/ui/review.mjs BASE_URL CONFIG_JSON
//
// CONFIG_JSON: {"admin": [name, pw], "cameras": [four ids], "shots": dir}
//
// Checks: the live grid's "Replay from 5 minutes ago" opens a 2×2 playback
// of its cameras; four tiles follow one clock (each tile's presented time,
// zero + currentTime, within 0.5 s of the clock for 20 s); the timeline grows
// while recording; wheel zoom keeps the time under the pointer and moves the
// playhead; dragging scrubs; a frame step moves exactly one frame; the
// shortcuts, marks and speed; screenshots at 1920×1080 and 390×844 with no
// horizontal scroll; no console errors.

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { check, launch, login, summary } from "./common.mjs";

const [base, cfgText] = process.argv.slice(2);
const scriptStart = Date.now();
const cfg = JSON.parse(cfgText);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const errors = [];
const requests = [];

/** Clock, view and each tile's presented wall time, read in one go. */
function readState() {
  const grid = document.querySelector("#pb-grid");
  const tl = document.querySelector("#pb-timeline");
  const clock = grid.syncClock.now();
  const tiles = [...grid.querySelectorAll(".pb-tile")].map((el) => {
    const v = el.querySelector("video");
    const zero = Number(el.dataset.zero);
    return {
      camera: el.dataset.camera, state: el.dataset.state, t: v.currentTime, seeking: v.seeking, paused: v.paused,
      ready: v.readyState, presented: Number.isFinite(zero) && el.dataset.zero ? zero + v.currentTime * 1000 : null,
    };
  });
  const head = tl.querySelector(".playhead").getBoundingClientRect();
  const box = tl.getBoundingClientRect();
  return {
    clock, playing: grid.syncClock.playing, rate: grid.syncClock.rate, tiles,
    view: [Number(tl.dataset.viewStart), Number(tl.dataset.viewEnd)],
    box: { x: box.x, y: box.y, w: box.width, h: box.height },
    head: tl.querySelector(".playhead").hidden ? null : head.x + head.width / 2,
  };
}

async function main() {
  const { ctx, page, close } = await launch();
  page.on("console", (m) => { if (m.type() === "error") errors.push(`${m.text()} ${(m.location() || {}).url || ""}`); });
  page.on("pageerror", (e) => errors.push(`uncaught: ${e.message}`));
  ctx.on("request", (r) => requests.push(r.url()));
  const state = () => page.evaluate(readState);
  const shot = (name) => page.screenshot({ path: join(cfg.shots, `${name}.png`), fullPage: true });
  const origin = new URL(base).origin;
  try {
    await page.setViewportSize({ width: 1920, height: 1080 });
    await login(page, base, cfg.admin);
    // A reload resumes the session (GET /api/session) without the login form.
    await page.reload();
    await page.locator("#nav").waitFor({ state: "visible" });
    check(await page.locator("#login-view").isHidden(), "a reload keeps the operator logged in");

    // --- From the live grid ------------------------------------------------
    await page.locator(".tile").nth(cfg.cameras.length - 1).waitFor();
    await page.screenshot({ path: join(cfg.shots, "live-1920.png") });
    const before = Date.now();
    await page.click("#live-replay");
    await page.locator("#pb-grid .pb-tile").nth(3).waitFor();
    const hash = await page.evaluate(() => location.hash);
    const shown = await page.$$eval("#pb-grid .pb-tile", (ts) => ts.map((t) => t.dataset.camera));
    const live = await page.$$eval(".tile[data-camera]", (ts) => ts.map((t) => t.dataset.camera)).catch(() => []);
    const layout = Number(await page.getAttribute("#pb-grid", "data-layout"));
    check([4, 9].includes(layout) && layout >= cfg.all_cameras && cfg.cameras.every((c) => shown.includes(c)),
      `the live grid's Replay opens a ${layout === 4 ? "2×2" : "3×3"} playback of its ${cfg.all_cameras} cameras`, { hash, shown, live });
    const s0 = await state();
    check(Math.abs(s0.clock - (before - 5 * 60e3)) < 30e3 && s0.playing, "replay starts playing from 5 minutes ago", { clock: new Date(s0.clock), before: new Date(before) });

    // --- Four tiles on one clock -------------------------------------------
    const start = Date.now() - 45e3;
    await page.goto(`${base}#/playback?cameras=${cfg.cameras.join(",")}&t=${start}&play=1`);
    await page.waitForFunction(() => {
      const ts = [...document.querySelectorAll("#pb-grid .pb-tile")];
      return ts.length === 4 && ts.every((t) => t.dataset.state === "playing" && t.querySelector("video").currentTime > 0 && !t.querySelector("video").paused);
    }, null, { timeout: 60000 });
    const samples = [];
    const t0 = Date.now();
    const c0 = (await state()).clock;
    while (Date.now() - t0 < 20000) {
      samples.push(await state());
      await sleep(250);
    }
    const c1 = (await state()).clock;
    let worst = 0;
    let worstAt = null;
    for (const s of samples) {
      for (const t of s.tiles) {
        const d = t.presented === null ? Infinity : Math.abs(t.presented - s.clock);
        if (d > worst) { worst = d; worstAt = { clock: s.clock, tile: t }; }
      }
    }
    check(worst < 500, `2×2: all four tiles stay within 0.5 s of the shared clock for 20 s (${samples.length} samples, worst ${worst.toFixed(0)} ms)`, { worstAt, log: await page.evaluate(() => document.querySelector("#pb-grid").syncLog) });
    check(c1 - c0 > 10000, `2×2: the clock moved on while playing (${((c1 - c0) / 1000).toFixed(1)} s in 20 s)`, { c0, c1 });
    await page.screenshot({ path: join(cfg.shots, "playback-1920.png") });
    const fold = await page.evaluate(() => {
      const r = (s) => document.querySelector(s).getBoundingClientRect();
      return { now: r("#pb-now").bottom, play: r("#pb-play").bottom, timeline: r("#pb-timeline").bottom, vh: innerHeight };
    });
    check(fold.now <= fold.vh && fold.play <= fold.vh && fold.timeline <= fold.vh, "at 1920×1080 the picture's date and time, the controls and the timeline are above the fold", fold);

    // --- The timeline grows while recording ---------------------------------
    const newest = () => page.$$eval(`#pb-timeline .lane[data-camera="${cfg.cameras[0]}"] .range`, (rs) => Math.max(0, ...rs.map((r) => Number(r.dataset.end))));
    const e0 = await newest();
    await page.waitForFunction(([sel, e]) => [...document.querySelectorAll(sel)].some((r) => Number(r.dataset.end) > e + 2000),
      [`#pb-timeline .lane[data-camera="${cfg.cameras[0]}"] .range`, e0], { timeout: 60000 });
    const e1 = await newest();
    check(e1 > e0, `the timeline grows while recording (newest end +${((e1 - e0) / 1000).toFixed(1)} s)`, { e0, e1 });

    // --- Frame step -----------------------------------------------------------
    await page.click("#pb-play"); // pause
    await page.locator("#pb-play", { hasText: "Play" }).waitFor();
    const settled = () => page.waitForFunction(() => [...document.querySelectorAll("#pb-grid .pb-tile")].every((t) => {
      const v = t.querySelector("video");
      return t.dataset.state === "playing" && v.paused && !v.seeking && v.readyState >= 2
        && Math.abs(Number(t.dataset.zero) + v.currentTime * 1000 - document.querySelector("#pb-grid").syncClock.now()) < 2;
    }), null, { timeout: 30000 });
    await page.locator("body").focus();
    const onFrame = () => page.waitForFunction(() => {
      const el = document.querySelector("#pb-grid .pb-tile");
      const t = el.querySelector("video").currentTime;
      return Number(el.dataset.frame) <= t && t - Number(el.dataset.frame) < 0.041;
    });
    // The first step goes from wherever playback stopped to a frame; the second, from that frame on.
    await page.keyboard.press(".");
    await settled();
    await onFrame();
    await page.keyboard.press(".");
    await settled();
    await onFrame();
    const f1 = await state();
    // The frame on screen, from requestVideoFrameCallback (the page keeps it in data-frame).
    const frameOf = () => page.$eval("#pb-grid .pb-tile", (el) => Number(el.dataset.frame));
    await page.waitForFunction((t) => Math.abs(Number(document.querySelector("#pb-grid .pb-tile").dataset.frame) - t) < 0.041, f1.tiles[0].t);
    const m1 = await frameOf();
    await page.keyboard.press(".");
    await settled();
    await page.waitForFunction((m) => Number(document.querySelector("#pb-grid .pb-tile").dataset.frame) !== m, m1);
    const m2 = await frameOf();
    const f2 = await state();
    const dClock = f2.clock - f1.clock;
    const dFrame = (m2 - m1) * 1000;
    check(dFrame > 30 && dFrame < 50 && Math.abs(dClock - dFrame) < 2 && !f2.playing,
      `a frame step moves to the next frame at 25 fps (frame on screen +${dFrame.toFixed(1)} ms, clock +${dClock.toFixed(1)} ms) and stays paused`, { f1, f2, m1, m2 });
    const off2 = Math.max(...f2.tiles.map((t) => Math.abs(t.presented - f2.clock)));
    check(off2 < 1, "after the step every tile shows the clock's time", f2.tiles);
    await page.keyboard.press(",");
    await settled();
    await page.waitForFunction((m) => Math.abs(Number(document.querySelector("#pb-grid .pb-tile").dataset.frame) - m) < 0.001, m1, { timeout: 10000 })
      .catch(() => {});
    const m3 = await frameOf();
    check(Math.abs(m3 - m1) < 0.001, `a frame step back shows the previous frame again (${m1} -> ${m2} -> ${m3})`, { m1, m2, m3 });

    // --- Wheel zoom around the pointer ----------------------------------------
    const z0 = await state();
    // The pointer a little left of the playhead: zooming in keeps both in view.
    const frac = Math.max(0.05, (z0.head - z0.box.x) / z0.box.w - 0.05);
    const px = z0.box.x + z0.box.w * frac;
    const atPointer = z0.view[0] + frac * (z0.view[1] - z0.view[0]);
    await page.mouse.move(px, z0.box.y + z0.box.h / 2);
    await page.mouse.wheel(0, -300);
    await page.waitForFunction((w) => {
      const tl = document.querySelector("#pb-timeline");
      return Number(tl.dataset.viewEnd) - Number(tl.dataset.viewStart) < w * 0.8;
    }, z0.view[1] - z0.view[0]);
    const z1 = await state();
    const w1 = z1.view[1] - z1.view[0];
    const stillAt = z1.view[0] + frac * w1;
    check(Math.abs(stillAt - atPointer) < (z0.view[1] - z0.view[0]) * 0.01,
      `wheel zoom narrows the window (${((z0.view[1] - z0.view[0]) / 1000).toFixed(0)} s -> ${(w1 / 1000).toFixed(0)} s) around the pointer`, { z0: z0.view, z1: z1.view });
    check(z0.head !== null && z1.head !== null && Math.abs(z1.head - z0.head) > 5, `wheel zoom moves the playhead on screen (${z0.head?.toFixed(0)} -> ${z1.head?.toFixed(0)} px)`, { z0: z0.head, z1: z1.head });

    // --- Drag to scrub ----------------------------------------------------------
    const xOf = (s, t) => s.box.x + ((t - s.view[0]) / (s.view[1] - s.view[0])) * s.box.w;
    const d0 = await state();
    const from = xOf(d0, d0.clock);
    const to = xOf(d0, d0.clock - 15e3);
    const y = d0.box.y + d0.box.h / 2;
    await page.mouse.move(from, y);
    await page.mouse.down();
    for (let i = 1; i <= 10; i++) await page.mouse.move(from + ((to - from) * i) / 10, y);
    await page.mouse.up();
    await settled();
    const d1 = await state();
    const perPx = (d0.view[1] - d0.view[0]) / d0.box.w;
    check(Math.abs(d1.clock - (d0.clock - 15e3)) < perPx * 3 + 50 && !d1.playing,
      `dragging on the timeline scrubs the clock back ${((d0.clock - d1.clock) / 1000).toFixed(1)} s`, { d0: d0.clock, d1: d1.clock, perPx });
    check(d1.head !== null && Math.abs(d1.head - to) < 4, `the playhead follows the drag (${d1.head?.toFixed(0)} px, pointer ${to.toFixed(0)} px)`, { head: d1.head, to });
    const off = Math.max(...d1.tiles.map((t) => Math.abs(t.presented - d1.clock)));
    check(off < 500, `after scrubbing every tile shows the clock's time (worst ${off.toFixed(0)} ms)`, d1.tiles);

    // --- Keys: speed, ±10 s, marks, help -----------------------------------------
    await page.keyboard.press("]");
    check(await page.inputValue("#pb-speed") === "2" && (await state()).rate === 2, "] doubles the speed for every tile");
    await page.keyboard.press("[");
    const k0 = (await state()).clock;
    await page.keyboard.press("i");
    await page.keyboard.press("ArrowRight");
    const k1 = (await state()).clock;
    check(Math.abs(k1 - k0 - 10e3) < 50, "→ jumps 10 s forward", { k0, k1 });
    await page.keyboard.press("o");
    const href = await page.getAttribute("#pb-export", "href");
    check(await page.locator("#pb-export").isVisible() && href.includes("cameras=") && href.includes("start=") && href.includes("end="),
      "in/out marks offer an export of the marked range", href);
    // A legal hold on the marked range of the cameras shown.
    const holdBox = page.locator("#view details.hold").first();
    await holdBox.locator("summary").click();
    await holdBox.locator("input.hold-reason").fill("review test: incident 7");
    await holdBox.locator("button.hold-go").click();
    await holdBox.locator(".hold-msg.ok").waitFor({ timeout: 20000 });
    const holds = await (await ctx.request.get(`${origin}/api/holds`)).json();
    const held = holds.holds.find((x) => x.reason === "review test: incident 7");
    check(held && cfg.cameras.every((c) => held.cameras.includes(c)) && Math.abs(Date.parse(held.end) - Date.parse(held.start) - 10e3) < 1000,
      "the marked 10 s of the four cameras can be put on legal hold", holds);
    // The hold shows on the timeline, in each held camera's lane, over the held range.
    const heldMarks = await (await page.waitForFunction(([cams, id]) => {
      const got = cams.map((c) => document.querySelector(`#pb-timeline .lane[data-camera="${c}"] .held[data-id="${id}"]`));
      return got.every(Boolean) && got.map((el) => ({ start: Number(el.dataset.start), end: Number(el.dataset.end), w: el.getBoundingClientRect().width }));
    }, [cfg.cameras, held.id], { timeout: 15000 }).catch(() => null))?.jsonValue();
    check(heldMarks && heldMarks.every((m) => m.start === Date.parse(held.start) && m.end === Date.parse(held.end) && m.w >= 2),
      "the timeline marks the held range in each of the four cameras' lanes", heldMarks);
    await page.screenshot({ path: join(cfg.shots, "playback-held-1920.png") });
    await page.locator("body").focus();
    await page.keyboard.press("?");
    await page.locator("#pb-help-dialog").waitFor({ state: "visible" });
    check(await page.locator("#pb-help-dialog tr").count() >= 6, "? shows the shortcuts");
    await page.keyboard.press("Escape");
    await page.locator("#pb-help-dialog").waitFor({ state: "hidden" });
    await page.click("#pb-export");
    await page.locator('#export-form input[name="camera"]').first().waitFor();
    const ticked = await page.$$eval('#export-form input[name="camera"]:checked', (bs) => bs.map((b) => b.value));
    check(cfg.cameras.every((c) => ticked.includes(c)), "the export form is prefilled with the cameras shown", ticked);

    // --- Audit: repeated live-view rows collapse; CSV of every entry --------------
    // Two more visits to the live grid: three live views of each camera, as an operator makes in a shift.
    for (let i = 0; i < 2; i++) {
      await page.goto(`${base}#/live`);
      await page.waitForFunction((c) => {
        const v = document.querySelector(`.tile[data-camera="${c}"] video`);
        return v && v.currentTime > 0;
      }, cfg.cameras[0], { timeout: 30000 });
      await page.goto(`${base}#/cameras`);
    }
    await page.goto(`${base}#/audit`);
    await page.locator("table.audit tbody tr").first().waitFor();
    const liveRows = () => page.$$eval("table.audit tbody tr", (rs) => rs.map((r) => [...r.cells].map((x) => x.textContent))
      .filter((c) => c[3].startsWith("Live view")));
    const collapsed = await liveRows();
    await shot("audit-collapsed");
    await page.check("#audit-expand");
    const expanded = await liveRows();
    await shot("audit-expanded");
    // Twelve or more live views of four cameras by one user: one row (or a few, where another
    // action came between) "Live view ×N" naming the cameras, with its first and last time.
    const big = collapsed.find((c) => /^Live view ×\d+$/.test(c[3]) && cfg.cameras.every((cam) => c[4].split(", ").includes(cam)));
    check(expanded.length >= 12 && collapsed.length < expanded.length && big && Number(big[3].split("×")[1]) >= 8
      && /^\d+–\d+$/.test(big[0]) && / – \d\d:\d\d:\d\d/.test(big[1]) && /\d cameras/.test(big[6]),
    `audit: ${expanded.length} live views of four cameras show as ${collapsed.length} rows, and every one on request`, { collapsed, n: expanded.length });
    // Filters: by camera (the server's), by user and action, by date.
    await page.uncheck("#audit-expand");
    await page.fill('input[name="target"]', cfg.cameras[1]);
    await page.selectOption('select[name="action"]', "live_view");
    await page.fill('input[name="actor"]', cfg.admin[0]);
    await page.click(".filters button[type=submit]");
    await page.waitForFunction((cam) => {
      const rs = [...document.querySelectorAll("table.audit tbody tr")];
      return rs.length > 0 && rs.every((r) => r.cells.length > 4 && r.cells[3].textContent.startsWith("Live view") && r.cells[4].textContent === cam);
    }, cfg.cameras[1]);
    check(true, "audit: filtered by camera, user and action, only that camera's live views remain");
    await page.fill('input[name="since"]', "2099-01-01T00:00");
    await page.click(".filters button[type=submit]");
    await page.locator("table.audit tbody td.empty").waitFor();
    check(true, "audit: a date range with nothing in it shows no entries");
    await page.click(".filters button[type=reset]");
    await page.waitForFunction(() => [...document.querySelectorAll("table.audit tbody tr")].some((r) => r.cells.length > 4 && r.cells[3].textContent.startsWith("Playback")));
    await page.check("#audit-expand");
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#audit-csv")]);
    const csv = await readFile(await download.path(), "utf8");
    const lines = csv.trim().split("\r\n");
    const shownRows = await page.locator("table.audit tbody tr").count();
    check(lines[0] === "seq,time,user,action,target,client,detail" && lines.length === shownRows + 1 && lines.some((l) => l.includes(",playback,")),
      `audit: the CSV holds every loaded entry (${lines.length - 1})`, lines.slice(0, 3));

    // --- Cameras: health at a glance ------------------------------------------------
    await page.goto(`${base}#/cameras`);
    await page.locator(`#cams-table tr[data-camera="${cfg.cameras[0]}"]`).waitFor();
    const healthRow = await page.$eval(`#cams-table tr[data-camera="${cfg.cameras[0]}"]`, (r) => [...r.cells].map((c) => c.textContent));
    const offRow = await page.$eval('#cams-table tr[data-camera="depot"]', (r) => [...r.cells].map((c) => c.textContent));
    // Since when online: the server's stamp, shown as a date and time, before the script started.
    const api = await (await ctx.request.get(`${origin}/api/cameras`)).json();
    const cam0 = api.cameras.find((c) => c.id === cfg.cameras[0]);
    const lastAge = Date.now() - Date.parse(cam0.last_frame);
    check(healthRow[1] === "Online" && /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d/.test(healthRow[2]) && Date.parse(cam0.online_since) < scriptStart
      && /^\d\d:\d\d:\d\d$/.test(healthRow[3]) && lastAge >= 0 && lastAge < 5000
      && healthRow[4].startsWith("Yes") && /bit\/s/.test(healthRow[5]) && healthRow[7] === "TCP",
    "cameras: a recording camera shows online since when, the time of its last frame, recording yes, bitrate and transport", { healthRow, cam0 });
    check(offRow[1] === "Offline" && /\d\d:\d\d:\d\d/.test(offRow[2]) && offRow[3] === "—" && offRow[4].startsWith("No"),
      "cameras: the unreachable camera shows offline since when, no frame ever, and not recording", offRow);

    // --- Screenshots; nothing wider than a phone ----------------------------------
    const pages = ["live", `playback?cameras=${cfg.cameras.join(",")}&t=${Date.now() - 30e3}`, "export", "cameras", "audit"];
    for (const [w, hgt] of [[1920, 1080], [390, 844]]) {
      await page.setViewportSize({ width: w, height: hgt });
      for (const p of pages) {
        await page.goto(`${base}#/${p}`);
        await page.waitForLoadState("networkidle").catch(() => {});
        await sleep(1500);
        const name = p.split("?")[0];
        await page.screenshot({ path: join(cfg.shots, `${name}-${w}.png`) });
        const scroll = await page.evaluate(() => ({ sw: document.documentElement.scrollWidth, cw: document.documentElement.clientWidth }));
        check(scroll.sw <= scroll.cw, `${name} at ${w}×${hgt}: no horizontal scroll`, scroll);
      }
    }

    const foreign = requests.filter((u) => !(u.startsWith(`${origin}/`) || u.startsWith(origin.replace(/^http/, "ws")) || u.startsWith("blob:") || u.startsWith("data:")));
    check(foreign.length === 0, `all ${requests.length} requests stayed on the server`, foreign);
    check(errors.length === 0, "no console errors", errors);
    console.log(summary());
  } finally {
    await close();
  }
}

main().catch((e) => {
  console.log(`not ok - ${e.message}`);
  console.log("console errors:", JSON.stringify(errors, null, 1));
  process.exit(1);
});
