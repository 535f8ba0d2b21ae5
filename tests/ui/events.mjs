// Camera events on the playback timeline in Debian's Chromium: a motion
// event the camera reported shows as a mark on its lane, at its time; "next"
// and "previous" event (by kind, buttons and the E key) put the clock on the
// events; the date picker counts the day's events.
//
//   node tests/ui/events.mjs BASE_URL CONFIG_JSON
//
// CONFIG_JSON: {"user": [name, pw], "camera": id, "at": RFC 3339 start of the
// first event, "starts": the starts of the camera's events (motion,
// tampering, motion), "screens": dir}
// Prints "ok - ..." per check and "ui: N passed, 0 failed" at the end.

import { join } from "node:path";
import { check, launch, login, summary } from "./common.mjs";

const [base, cfgText] = process.argv.slice(2);
const cfg = JSON.parse(cfgText);
const { page, close } = await launch();
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));

try {
  await login(page, base, cfg.user);
  const q = new URLSearchParams({ cameras: cfg.camera, layout: "1", t: cfg.at });
  await page.goto(`${base}/#/playback?${q}`);
  const marks = page.locator(`#pb-timeline .lane[data-camera="${cfg.camera}"] .event.ev-motion`);
  await marks.first().waitFor({ state: "attached", timeout: 60000 });
  check((await marks.count()) >= 1, "the camera's lane shows a motion mark");
  const start = Number(await marks.first().getAttribute("data-start"));
  check(Math.abs(start - Date.parse(cfg.at)) < 1000, "the mark sits at the event's time", { start, at: cfg.at });
  const title = await marks.first().getAttribute("title");
  check(title.includes("motion") && title.includes("CellMotionDetector"), "its tooltip names the kind and topic", title);
  await page.screenshot({ path: join(cfg.screens, "1-event-marks.png"), fullPage: true });

  const [first, tampering, last] = cfg.starts.map((t) => Date.parse(t));
  const status = page.locator("#pb-ev-status");
  const clockNow = () => page.evaluate(() => document.getElementById("pb-grid").syncClock.now());
  /** Presses `how` (a button or a key) and waits for the status to name the event at `ms`. */
  async function step(how, ms, what) {
    if (how.startsWith("#")) await page.click(how);
    else {
      await page.evaluate(() => document.activeElement && document.activeElement.blur());
      await page.keyboard.press(how);
    }
    await page.waitForFunction((s) => document.getElementById("pb-ev-status").dataset.start === String(s), ms, { timeout: 30000 })
      .catch(() => {});
    const at = await clockNow();
    check(Math.abs(at - ms) < 1500, what, { clock: new Date(at).toISOString(), want: new Date(ms).toISOString(), status: await status.textContent() });
  }
  await step("#pb-ev-next", tampering, "Next event puts the clock on the tampering");
  check((await status.textContent()).startsWith("Tampering at "), "the status names it", await status.textContent());
  await page.selectOption("#pb-ev-kind", "motion");
  check((await page.textContent("#pb-ev-next")).includes("Next motion"), "the buttons name the kind chosen", await page.textContent("#pb-ev-next"));
  await step("#pb-ev-next", last, "Next motion goes to the last motion");
  await step("#pb-ev-prev", first, "Previous motion skips the tampering");
  await page.click("#pb-ev-prev");
  await page.waitForFunction(() => /No earlier/.test(document.getElementById("pb-ev-status").textContent), null, { timeout: 30000 }).catch(() => {});
  check((await status.textContent()) === "No earlier motion event.", "before the first motion there is none", await status.textContent());
  await step("e", last, "the E key goes to the next motion");
  await step("E", first, "Shift+E goes back to the previous motion");
  await page.screenshot({ path: join(cfg.screens, "2-next-previous.png"), fullPage: true });

  // The date picker counts the day's events, of the kind chosen.
  const today = page.locator('#pb-calendar button.day[aria-current="date"]');
  await page.selectOption("#pb-ev-kind", "");
  await page.click("#pb-cal-btn");
  await today.waitFor({ timeout: 30000 });
  check((await today.getAttribute("data-events")) === "3", "the day shows its 3 events", await today.getAttribute("aria-label"));
  check((await today.getAttribute("aria-label")).endsWith(", 3 events"), "and says so to screen readers", await today.getAttribute("aria-label"));
  check((await today.locator(".ev-count").textContent()) === "3", "as a count on the day");
  await page.screenshot({ path: join(cfg.screens, "3-calendar-counts.png"), fullPage: true });
  await page.click("#pb-cal-btn");
  await page.selectOption("#pb-ev-kind", "tamper");
  await page.click("#pb-cal-btn");
  await today.waitFor({ timeout: 30000 });
  check((await today.getAttribute("data-events")) === "1", "of tampering, 1", await today.getAttribute("aria-label"));
  check(errors.length === 0, "no page errors", errors);
  console.log(summary());
} finally {
  await close();
}
