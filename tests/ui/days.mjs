// The playback page's "Days with footage" calendar in Chromium: the days the
// server reports for the camera shown are marked (and named so to screen
// readers), another camera's day is not, and choosing a marked day shows its
// footage on the timeline.
//
//   node tests/ui/days.mjs BASE_URL CONFIG_JSON
//
// CONFIG_JSON: {"admin": [name, pw], "marked": [day, ...] of camera a,
// "other": a day only camera b has footage on, "screens": dir}.

import { join } from "node:path";
import { check, launch, login, summary } from "./common.mjs";

const [base, cfgText] = process.argv.slice(2);
const cfg = JSON.parse(cfgText);
const { page, close } = await launch();
const shot = (n) => page.screenshot({ path: join(cfg.screens, `${n}.png`), fullPage: true });
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
const dayBtn = (d) => page.locator(`#pb-calendar button[data-day="${d}"]`);

/** Pages the calendar back until the month of `day` is shown. */
async function toMonth(day) {
  for (let i = 0; i < 3 && !(await dayBtn(day).count()); i++) {
    const before = await page.textContent("#pb-cal-month");
    await page.click("#pb-cal-prev");
    await page.waitForFunction((b) => document.querySelector("#pb-cal-month").textContent !== b, before);
  }
}

try {
  await login(page, base, cfg.admin);
  await page.goto(`${base}#/playback?camera=a`);
  await page.locator("#pb-cal-btn").waitFor({ state: "visible" });
  check(await page.locator("#pb-calendar").isHidden(), "the calendar is closed until asked for");
  await page.click("#pb-cal-btn");
  await page.locator("#pb-calendar table.cal").waitFor({ state: "visible" });
  const today = await page.inputValue("#pb-day");
  check(await dayBtn(today).getAttribute("aria-current") === "date", "the calendar opens on the day in view", today);
  check(!(await dayBtn(today).getAttribute("class")).includes("has-footage"), "today (nothing recorded) is not marked");

  const [recent, old] = cfg.marked;
  await toMonth(recent);
  const b = dayBtn(recent);
  check((await b.getAttribute("class")).includes("has-footage"), "a day with footage is marked", recent);
  check(/: footage$/.test(await b.getAttribute("aria-label")), "and says so to screen readers", await b.getAttribute("aria-label"));
  if (await dayBtn(cfg.other).count()) {
    check(!(await dayBtn(cfg.other).getAttribute("class")).includes("has-footage"), "another camera's day is not marked for this one", cfg.other);
  }
  await shot("1-calendar");

  await b.click();
  check(await page.locator("#pb-calendar").isHidden(), "choosing a day closes the calendar");
  await page.waitForFunction((d) => document.querySelector("#pb-day").value === d, recent);
  await page.locator("#pb-summary").filter({ hasText: "recorded in 1 stretch" }).waitFor();
  await page.locator(".timeline .range").first().waitFor();
  check(true, "the chosen day's footage is on the timeline");

  await page.click("#pb-cal-btn");
  await page.locator("#pb-calendar table.cal").waitFor({ state: "visible" });
  await toMonth(old);
  check((await dayBtn(old).getAttribute("class")).includes("has-footage"), "a day in an earlier month is marked", old);
  const marked = await page.$$eval("#pb-calendar button.has-footage", (bs) => bs.map((x) => x.dataset.day));
  check(marked.length === 1 && marked[0] === old, "only the days with footage are marked", marked);
  await shot("2-earlier-month");
  await page.keyboard.press("Escape");
  check(await page.locator("#pb-calendar").isHidden(), "Escape closes the calendar");
  check(errors.length === 0, "no script errors", errors);
  console.log(summary());
} finally {
  await close();
}
