// The camera events list beside playback, and the event search it leads to,
// in Debian's Chromium, against events the scripted ONVIF camera reported:
// every event in view is listed with its kind and its start and end in the
// server's time zone, newest first or in time order; the kind filter; a click
// plays from a few seconds before the event and the row is highlighted once
// the playhead is in it; zooming in leaves out what is out of view; an event
// the camera reports while the page is open appears; the search across
// cameras finds them by kind and plays one.
//
//   node tests/ui/event_list.mjs BASE_URL CONFIG_JSON
//
// CONFIG_JSON: {"user": [name, pw], "camera": id, "events": [{kind, start,
// end (RFC 3339 or null), local_start, local_end ("HH:MM:SS" in the server's
// zone, or null), topic}], "signal": file to create when the page is ready
// for a new event (the harness then makes the camera report a digital input),
// "screens": dir}

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { check, launch, login, summary } from "./common.mjs";

const [base, cfgText] = process.argv.slice(2);
const cfg = JSON.parse(cfgText);
const { page, close } = await launch();
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
const shot = (n, full = false) => page.screenshot({ path: join(cfg.screens, `${n}.png`), fullPage: full });
const LABELS = { motion: "Motion", tamper: "Tampering", intrusion: "Line crossing / intrusion", input: "Digital input", video_loss: "Video loss", other: "Other" };
const want = cfg.events.map((e) => ({ ...e, ms: Date.parse(e.start) }));
const byKind = (k) => want.filter((e) => e.kind === k);
const clockNow = () => page.evaluate(() => document.getElementById("pb-grid").syncClock.now());
/** The rows of the list as the page shows them. */
const rows = () => page.$$eval("#pb-evl li.evl-item", (ls) => ls.map((li) => ({
  kind: li.dataset.kind, start: Number(li.dataset.start), end: li.dataset.end,
  label: li.querySelector(".evl-kind").textContent.trim(),
  startText: li.querySelector(".evl-start").textContent,
  endText: li.querySelector(".evl-end") ? li.querySelector(".evl-end").textContent : null,
  topic: li.querySelector(".evl-topic") ? li.querySelector(".evl-topic").textContent : null,
  current: li.getAttribute("aria-current") === "true",
  text: li.textContent,
})));
const waitRows = (pred, what, arg) => page.waitForFunction(pred, arg, { timeout: 60000 }).catch(() => { throw new Error(`timed out: ${what}`); });

try {
  await page.setViewportSize({ width: 1920, height: 1080 });
  await login(page, base, cfg.user);
  check(await page.locator('#nav a[data-view="events"]').isVisible(), "the menu has Events");
  const q = new URLSearchParams({ cameras: cfg.camera, layout: "1", t: cfg.events[0].start });
  await page.goto(`${base}/#/playback?${q}`);
  await waitRows((n) => document.querySelectorAll("#pb-evl li.evl-item").length >= n, "the list to fill", want.length);

  // --- Every event, its kind and times -------------------------------------
  let got = await rows();
  check(got.length === want.length, "the list beside playback has every event in view", got.map((g) => g.kind));
  check(got.every((g, i) => i === 0 || got[i - 1].start >= g.start), "newest first", got.map((g) => g.start));
  for (const e of want) {
    const g = got.find((x) => Math.abs(x.start - e.ms) < 1);
    check(g && g.kind === e.kind && g.label === LABELS[e.kind], `the ${e.kind} event is listed as "${LABELS[e.kind]}"`, { g, e });
    check(g.startText === e.local_start, `its start shows in the server's time zone (${e.local_start})`, g.startText);
    // A line crossed has no duration: the server ends it where it starts.
    if (e.local_end && Date.parse(e.end) > e.ms) check(g.endText === e.local_end, `and its end (${e.local_end})`, g.text);
    else check(g.endText === null && /a moment/.test(g.text), `the ${e.kind} event, without duration, shows as a moment`, g.text);
    if (e.kind === "other") check(g.topic === e.topic, "an other event shows its raw topic", g.topic);
  }
  const box = await page.locator("#pb-events").boundingBox();
  const grid = await page.locator("#pb-grid").boundingBox();
  check(box.x > grid.x + grid.width && box.y < grid.y + grid.height, "1920×1080: the list is beside the picture", { box, grid });
  await page.selectOption("#pb-evl-order", "oldest");
  got = await rows();
  check(got.length === want.length && got.every((g, i) => i === 0 || got[i - 1].start <= g.start), "in time order on request", got.map((g) => g.start));

  // --- Filter by kind ------------------------------------------------------
  for (const k of ["motion", "tamper", "other"]) {
    await page.selectOption("#pb-ev-kind", k);
    got = await rows();
    check(got.length === byKind(k).length && got.every((g) => g.kind === k), `the filter shows only ${k} (${byKind(k).length})`, got.map((g) => g.kind));
  }
  check(/1 event in view \(other\)/.test(await page.textContent("#pb-evl-count")), "the count says what is shown", await page.textContent("#pb-evl-count"));
  await page.selectOption("#pb-ev-kind", "");
  check((await rows()).length === want.length, "Any event shows them all again");

  // --- A click plays from just before; the row under the playhead ----------
  const tamper = byKind("tamper")[0];
  await page.click('#pb-evl li[data-kind="tamper"] button');
  const at = await clockNow();
  check(at >= tamper.ms - 5000 && at <= tamper.ms - 1000, "a click puts the clock a few seconds before the event", { clock: new Date(at).toISOString(), event: tamper.start });
  check(!(await rows()).find((g) => g.kind === "tamper").current, "before the event its row is not highlighted");
  await waitRows(() => document.querySelector('#pb-evl li[data-kind="tamper"][aria-current="true"]'), "the tamper row to be highlighted");
  if ((await page.textContent("#pb-play")).includes("Pause")) await page.click("#pb-play");
  const t = await clockNow();
  got = await rows();
  const inside = (g) => t >= g.start && t <= (g.end ? Number(g.end) : g.start + 2000);
  check(got.filter((g) => g.current).every(inside) && got.filter(inside).every((g) => g.current) && got.some((g) => g.current),
    "playing into it highlights the row of the event under the playhead, and only that", { clock: t, current: got.filter((g) => g.current).map((g) => g.kind) });
  await shot("1-list-1920x1080");

  // --- The list follows the range -------------------------------------------
  await page.selectOption("#pb-zoom", "30000");
  await waitRows((n) => document.querySelectorAll("#pb-evl li.evl-item").length < n, "zooming in to shorten the list", want.length);
  got = await rows();
  const late = ["intrusion", "input", "video_loss", "other"];
  check(got.some((g) => g.kind === "tamper") && !got.some((g) => late.includes(g.kind)), "zoomed in to 30 s, only the events around the playhead are listed", got.map((g) => g.kind));
  await page.selectOption("#pb-zoom", "3600000");
  await waitRows((n) => document.querySelectorAll("#pb-evl li.evl-item").length >= n, "zooming out to list all again", want.length);
  check(true, "zoomed out to an hour, all are listed again");

  // --- An event reported while the page is open ------------------------------
  await page.selectOption("#pb-evl-order", "newest");
  writeFileSync(cfg.signal, "ready\n");
  await waitRows((n) => document.querySelectorAll("#pb-evl li.evl-item").length > n, "the new event to be listed", want.length);
  got = await rows();
  check(got[0].kind === "input" && got[0].end === "" && /still on/.test(got[0].text) && got[0].start > Math.max(...want.map((e) => e.ms)),
    "a digital input the camera reports while the page is open comes in at the top, still on", got[0]);

  // --- Phone ------------------------------------------------------------------
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  const sideways = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(sideways <= 0, "390×844: no sideways scrolling", sideways);
  const tl = await page.locator(".timeline-wrap").boundingBox();
  const list = await page.locator("#pb-events").boundingBox();
  check(list.y >= tl.y + tl.height - 1, "390×844: the list comes under the timeline", { tl, list });
  await shot("2-list-390x844", true);
  await page.locator("#pb-events").screenshot({ path: join(cfg.screens, "3-list-panel-390x844.png") });

  // --- Search across cameras, reached from the list ----------------------------
  await page.setViewportSize({ width: 1920, height: 1080 });
  await page.selectOption("#pb-ev-kind", "motion");
  const href = await page.getAttribute("#pb-evl-search", "href");
  check(/kind=motion/.test(href) && /start=/.test(href) && /end=/.test(href), "the list links to the search with its kind and range", href);
  await page.click("#pb-evl-search");
  await page.locator("#evs-count").waitFor({ timeout: 30000 });
  check((await page.inputValue("#evs-kind")) === "motion", "the search opens with the list's kind");
  let found = await page.$$eval("#evs-results tbody tr", (trs) => trs.map((tr) => tr.textContent));
  check(found.length === byKind("motion").length && found.every((x) => x.includes("Motion") && x.includes(cfg.camera)), "and finds the camera's motion events", found);
  await page.selectOption("#evs-kind", "");
  await page.click("#evs-form button[type=submit]");
  await page.waitForFunction((n) => document.querySelectorAll("#evs-results tbody tr").length > n, byKind("motion").length);
  found = await page.$$eval("#evs-results tbody tr", (trs) => trs.map((tr) => tr.textContent));
  check(found.length === want.length + 1, "every kind, with the new input", found.length);
  await shot("4-search-1920x1080");
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  await shot("5-search-390x844", true);
  await page.setViewportSize({ width: 1920, height: 1080 });
  const play = page.locator("#evs-results tbody tr", { hasText: "Tampering" }).locator("a.evs-play");
  await play.click();
  await page.locator("#pb-grid").waitFor();
  await page.waitForFunction(() => document.getElementById("pb-grid").syncClock, null);
  const c = await clockNow();
  check(c >= tamper.ms - 5000 && c <= tamper.ms, "Play in the search opens playback just before the event", { clock: new Date(c).toISOString(), event: tamper.start });
  check(errors.length === 0, "no page errors", errors);
  console.log(summary());
} finally {
  await close();
}
