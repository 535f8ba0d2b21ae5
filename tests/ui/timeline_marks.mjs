// The playback timeline's marks in Chromium: a span the camera was offline is
// drawn apart from "nothing recorded", with its reason; hovering the recorded
// stretch shows the server's thumbnail of that moment; an operator bookmarks
// the moment shown (B), the flag appears on the lane and in the list, jumping
// to it moves the clock there, and its author deletes it.
//
//   node tests/ui/timeline_marks.mjs BASE_URL CONFIG_JSON
//
// CONFIG_JSON: {"user": [name, pw], "camera": id, "at": ms inside footage,
// "offline": [start ms, end ms], "reason": text, "screens": dir}

import { join } from "node:path";
import { check, launch, login, summary } from "./common.mjs";

const [base, cfgText] = process.argv.slice(2);
const cfg = JSON.parse(cfgText);
const { page, close } = await launch();
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
page.on("dialog", (d) => d.accept());
const shot = (n) => page.screenshot({ path: join(cfg.screens, `${n}.png`) });
const clockNow = () => page.evaluate(() => Number(document.querySelector("#pb-now").dataset.t));

try {
  await page.setViewportSize({ width: 1920, height: 1080 });
  await login(page, base, cfg.user);
  await page.goto(`${base}#/playback?camera=${cfg.camera}&t=${cfg.at}`);
  await page.locator(".timeline .range").first().waitFor({ state: "attached" });

  // --- Offline span ---------------------------------------------------------
  const off = page.locator('.timeline .offline[data-state="offline"]').first();
  await off.waitFor({ state: "attached" });
  const span = await off.evaluate((e) => ({ start: Number(e.dataset.start), end: Number(e.dataset.end), title: e.title, w: e.getBoundingClientRect().width }));
  check(Math.abs(span.start - cfg.offline[0]) < 1000 && Math.abs(span.end - cfg.offline[1]) < 1000 && span.w > 2,
    "the camera's offline span is drawn where the server says", { span, want: cfg.offline });
  check(span.title.includes(cfg.reason), "its tooltip gives the reason", span.title);
  const apart = await page.evaluate(() => {
    const a = getComputedStyle(document.querySelector(".timeline .offline")).backgroundImage;
    const g = getComputedStyle(document.querySelector(".timeline")).backgroundImage;
    return a !== g && a !== "none";
  });
  check(apart, "offline looks different from a plain gap");

  // Redraws (a pan, and the refresh every 5 s) move the marks' elements rather
  // than replace them: an element held across a redraw is still on the page,
  // where it should be (replaced ones measured 0 px wide once detached).
  const offSel = '.timeline .offline[data-state="offline"]';
  const x0 = await page.evaluate((sel) => {
    const e = document.querySelector(sel);
    e.dataset.probe = "kept";
    return e.getBoundingClientRect().left;
  }, offSel);
  const tl = await page.locator(".timeline").boundingBox();
  await page.mouse.move(tl.x + tl.width / 2, tl.y + tl.height / 2);
  await page.keyboard.down("Shift");
  await page.mouse.wheel(0, 60);
  await page.keyboard.up("Shift");
  await page.mouse.move(5, 5);
  await page.waitForFunction(([sel, x]) => {
    const e = document.querySelector(sel);
    return e && Math.abs(e.getBoundingClientRect().left - x) > 5;
  }, [offSel, x0]);
  await page.waitForTimeout(6000); // at least one refresh of the ranges
  const kept = await page.evaluate((sel) => {
    const e = document.querySelector(sel);
    return { probe: e.dataset.probe, n: document.querySelectorAll(sel).length, w: e.getBoundingClientRect().width };
  }, offSel);
  check(kept.probe === "kept" && kept.n === 1 && kept.w > 2, "a redraw moves the offline span's element instead of replacing it", kept);

  // --- Thumbnail on hover ---------------------------------------------------
  const box = await page.locator(".timeline .range").first().boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.move(box.x + box.width / 2 + 1, box.y + box.height / 2);
  await page.waitForFunction(() => {
    const i = document.querySelector(".timeline .hover-time img.thumb");
    return i && !i.hidden && i.complete && i.naturalWidth > 0;
  }, null, { timeout: 30000 });
  const img = await page.evaluate(() => {
    const i = document.querySelector(".timeline .hover-time img.thumb");
    return { w: i.naturalWidth, h: i.naturalHeight, src: i.getAttribute("src") };
  });
  check(img.w === 160 && img.h > 0 && img.src.includes(`/api/cameras/${cfg.camera}/thumbnail?t=`), "hovering recorded footage shows its thumbnail", img);
  await shot("timeline-hover-1920");
  await page.mouse.move(5, 5);

  // --- Bookmark -------------------------------------------------------------
  await page.locator("#pb-play").focus();
  const at = await clockNow();
  await page.keyboard.press("b");
  await page.locator("#bm-dialog").waitFor({ state: "visible" });
  await page.fill("#bm-name", "Red car at the gate");
  await page.fill("#bm-note", "left towards the market");
  await page.click("#bm-save");
  const flag = page.locator(".timeline .bookmark").first();
  await flag.waitFor({ state: "attached" });
  const t = Number(await flag.getAttribute("data-t"));
  check(Math.abs(t - at) < 1000, "B bookmarks the moment shown, and its flag is on the lane", { t, at });
  const item = page.locator("#pb-bookmarks li").first();
  check((await item.textContent()).includes("Red car at the gate"), "the bookmark is listed under the timeline", await item.textContent());
  await shot("timeline-bookmark-1920");

  // Elsewhere, then back by the list and by the flag.
  await page.click("#pb-fwd-1m");
  await page.waitForFunction((x) => Math.abs(Number(document.querySelector("#pb-now").dataset.t) - x) > 30e3, t);
  await page.click("#pb-bookmarks .bm-go");
  await page.waitForFunction((x) => Math.abs(Number(document.querySelector("#pb-now").dataset.t) - x) < 1500, t);
  check(true, "the list's button jumps to the bookmark");
  await page.click("#pb-fwd-1m");
  await page.click("#pb-play"); // pause or play: either way the clock is away from the flag
  await page.waitForFunction((x) => Math.abs(Number(document.querySelector("#pb-now").dataset.t) - x) > 30e3, t);
  await page.locator(".timeline .bookmark").first().click();
  await page.waitForFunction((x) => Math.abs(Number(document.querySelector("#pb-now").dataset.t) - x) < 1500, t);
  check(true, "a click on the flag jumps to the bookmark");

  // Its author deletes it.
  await page.click("#pb-bookmarks .bm-delete");
  await page.waitForFunction(() => !document.querySelector(".timeline .bookmark") && !document.querySelector("#pb-bookmarks li"));
  check(true, "deleting the bookmark takes its flag and list entry away");
  check(errors.length === 0, "no page errors", errors);
  console.log(summary());
} finally {
  await close();
}
