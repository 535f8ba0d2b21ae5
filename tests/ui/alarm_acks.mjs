// Per-user acknowledgement of alarms in Chromium: Ann acknowledges an alarm
// under the bell with a note; it is done for her, but Bob still sees it
// prominent and counted, with who acknowledged it when and her note, until
// he acknowledges it himself.
//
//   node tests/ui/alarm_acks.mjs BASE_URL CONFIG_JSON
//
// CONFIG_JSON: {"ann": [name, pw], "bob": [name, pw], "message": text in the
// alarm, "screens": dir}

import { join } from "node:path";
import { check, launch, login, summary } from "./common.mjs";

const [base, cfgText] = process.argv.slice(2);
const cfg = JSON.parse(cfgText);
const errors = [];
const count = (page) => page.evaluate(() => Number(document.querySelector("#bell-count").textContent));
const row = (page) => page.locator("#bell-panel .alarm-list > li").filter({ hasText: cfg.message }).first();

async function open(who) {
  const b = await launch();
  b.page.on("pageerror", (e) => errors.push(`${who}: ${e}`));
  await b.page.setViewportSize({ width: 1920, height: 1080 });
  await login(b.page, base, cfg[who]);
  // The bell polls every 15 s; the alarm is already raised when this starts.
  await b.page.waitForFunction(() => Number(document.querySelector("#bell-count").textContent) > 0, null, { timeout: 60000 });
  await b.page.click("#bell");
  await row(b.page).waitFor({ state: "visible" });
  return b;
}

const ann = await open("ann");
const bob = await open("bob");
try {
  // --- Ann acknowledges, with a note ------------------------------------------
  const a = ann.page;
  // Other alarms may be up on this machine (a clock not synchronised): counts are compared, not fixed.
  const annBefore = await count(a);
  check((await row(a).getAttribute("class")) === "open", "an alarm nobody acknowledged is prominent");
  await row(a).locator(".alarm-note").fill("Engineer called, ETA 30 min");
  await row(a).locator(".alarm-ack").click();
  await row(a).locator(".alarm-acks li[data-user=ann]").waitFor({ state: "visible" });
  check((await row(a).getAttribute("class")) === "acked", "once Ann acknowledged it, it is no longer prominent for her");
  const annSees = await row(a).textContent();
  check(/Acknowledged by ann at \d{4}-\d\d-\d\d \d\d:\d\d/.test(annSees) && annSees.includes("Engineer called, ETA 30 min"),
    "her row says she acknowledged it, when, and her note", annSees);
  check((await count(a)) === annBefore - 1, "her bell counts one fewer to acknowledge", { before: annBefore, now: await count(a) });
  await a.screenshot({ path: join(cfg.screens, "alarms-ann-acked-1920.png") });

  // --- Bob still has it to acknowledge ---------------------------------------
  const b = bob.page;
  // His panel refreshes within a poll (15 s); reopening it shows the latest now.
  await b.waitForFunction(() => document.querySelector("#bell-panel .alarm-acks li[data-user=ann]"), null, { timeout: 60000 });
  check((await row(b).getAttribute("class")) === "open", "for Bob it stays prominent");
  const bobBefore = await count(b);
  check(bobBefore === annBefore, "and still counted on his bell", { bob: bobBefore, annBefore });
  const bobSees = await row(b).textContent();
  check(bobSees.includes("Acknowledged by ann at") && bobSees.includes("Engineer called, ETA 30 min") && bobSees.includes("not yet by you"),
    "he sees who acknowledged it, when, with her note, and that he has not", bobSees);
  const look = await b.evaluate(() => {
    const li = document.querySelector("#bell-panel .alarm-list > li.open");
    return getComputedStyle(li).borderLeftWidth;
  });
  check(look === "4px", "the open alarm is marked out with a bar", look);
  await b.screenshot({ path: join(cfg.screens, "alarms-bob-open-1920.png") });
  await b.setViewportSize({ width: 390, height: 844 });
  // The menu refits from a ResizeObserver, a frame after the resize: measure
  // once it has had the chance (a page that never fits still fails below).
  await b.waitForFunction(() => document.documentElement.scrollWidth <= 390, null, { timeout: 5000 }).catch(() => {});
  const wide = await b.evaluate(() => document.documentElement.scrollWidth);
  check(wide <= 390, "the alarm panel fits a phone without scrolling sideways", wide);
  await b.screenshot({ path: join(cfg.screens, "alarms-bob-open-390.png") });

  // --- Bob acknowledges without a note ---------------------------------------
  await row(b).locator(".alarm-ack").click();
  await row(b).locator(".alarm-acks li[data-user=bob]").waitFor({ state: "visible" });
  check((await row(b).getAttribute("class")) === "acked", "after his own acknowledgement it is done for Bob too");
  const both = await row(b).locator(".alarm-acks li").evaluateAll((l) => l.map((e) => e.dataset.user));
  check(JSON.stringify(both) === JSON.stringify(["ann", "bob"]), "both acknowledgements are listed, oldest first", both);
  await b.waitForFunction((n) => Number(document.querySelector("#bell-count").textContent) === n, bobBefore - 1);
  check(true, "his bell counts one fewer");
  check(errors.length === 0, "no page errors", errors);
  console.log(summary());
} finally {
  await ann.close();
  await bob.close();
}
