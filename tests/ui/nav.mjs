// The top menu in Chromium at the window sizes control rooms use: one line at
// 1280×720 and 1920×1080, entries that do not fit reachable under "More" (and
// usable from there) at 1280 and 1024, no sideways scrolling on a phone.
//
//   node tests/ui/nav.mjs BASE_URL CONFIG_JSON
//
// CONFIG_JSON: {"admin": [name, pw], "screens": dir}

import { join } from "node:path";
import { check, launch, login, summary } from "./common.mjs";

const [base, cfgText] = process.argv.slice(2);
const cfg = JSON.parse(cfgText);
const { page, close } = await launch();
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
const shot = (n) => page.screenshot({ path: join(cfg.screens, `${n}.png`) });

/** Where the menu's entries are: in the bar (with their row) or under "More". */
const layout = () => page.evaluate(() => {
  const vis = (el) => !!el && el.getClientRects().length > 0;
  const bar = [...document.querySelectorAll("#nav > ul > li:not(.nav-more)")].filter((li) => !li.hidden);
  const more = [...document.querySelectorAll("#nav-more-list > li")].filter((li) => !li.hidden);
  const header = document.querySelector("header.top").getBoundingClientRect();
  const session = document.querySelector("#session").getBoundingClientRect();
  const holder = document.querySelector("#nav .nav-more");
  const rightmost = Math.max(...bar.map((li) => li.getBoundingClientRect().right), vis(holder) ? holder.getBoundingClientRect().right : 0);
  return {
    bar: bar.map((li) => li.textContent.trim()),
    tops: [...new Set(bar.map((li) => Math.round(li.getBoundingClientRect().top)))],
    more: more.map((li) => li.textContent.trim()),
    moreShown: vis(holder),
    headerHeight: Math.round(header.height),
    overlap: rightmost > session.left + 1,
    sessionTop: Math.round(session.top),
    scrollX: document.documentElement.scrollWidth - window.innerWidth,
  };
});

/** Every entry an admin has, wherever it is now (new pages add entries). */
const allEntries = () => page.$$eval("#nav li[data-order]", (ls) => ls.filter((li) => !li.hidden).map((li) => li.textContent.trim()));
let ALL = [];

try {
  await page.setViewportSize({ width: 1280, height: 720 });
  await login(page, base, cfg.admin);
  await page.goto(`${base}#/cameras`);
  await page.locator("#bell").waitFor({ state: "visible" });
  await page.waitForTimeout(300);
  ALL = await allEntries();
  check(ALL.length >= 12 && ALL.includes("Users") && ALL.includes("Account"), "the admin's menu has its entries", ALL);
  let l = await layout();
  check(l.tops.length === 1 && l.headerHeight < 70, "1280×720: the menu is one line", l);
  check(!l.overlap, "1280×720: the menu does not run under the session controls", l);
  check(ALL.every((n) => l.bar.includes(n) || l.more.includes(n)), "1280×720: every entry is in the bar or under More", l);
  check(l.bar.includes("Live") && l.bar.includes("Playback"), "1280×720: the main entries stay in the bar", l);
  await shot("menu-1280x720");

  await page.setViewportSize({ width: 1920, height: 1080 });
  await page.waitForFunction(() => document.querySelector("#nav .nav-more").hidden);
  l = await layout();
  check(l.tops.length === 1 && l.more.length === 0 && !l.moreShown && l.bar.length === ALL.length, "1920×1080: every entry on one line, no More", l);
  await shot("menu-1920x1080");

  await page.setViewportSize({ width: 1024, height: 768 });
  await page.waitForFunction(() => !document.querySelector("#nav .nav-more").hidden);
  l = await layout();
  check(l.tops.length === 1 && l.headerHeight < 70 && !l.overlap, "1024×768: still one line", l);
  check(l.moreShown && l.more.length > 0 && ALL.every((n) => l.bar.includes(n) || l.more.includes(n)), "1024×768: the rest is under More", l);
  check(l.scrollX <= 0, "1024×768: no sideways scroll", l);
  const target = l.more.includes("Users") ? "Users" : l.more[l.more.length - 1];
  check(await page.locator("#nav-more-list").isHidden(), "More is closed until opened");
  await page.click("#nav-more");
  check(await page.getAttribute("#nav-more", "aria-expanded") === "true", "More says it is open");
  await shot("menu-1024x768-open");
  await page.click(`#nav-more-list a:text-is("${target}")`);
  await page.waitForFunction(() => document.querySelector("#nav-more-list").hidden);
  // The list closes on the click itself; the page is marked current when the
  // hashchange that follows is handled, a task later: wait for it (5 s at most).
  const marked = await page.waitForFunction(() => document.querySelector("#nav-more-list a[aria-current=page]") !== null, null, { timeout: 5000 }).then(() => true, () => false);
  check(marked, `choosing ${target} under More opens it and marks it current`, await page.evaluate(() => location.hash));
  check(await page.evaluate(() => document.querySelector("#nav-more").classList.contains("current")), "More shows that the page open is one of its entries");
  // Escape closes it and gives the focus back.
  await page.click("#nav-more");
  await page.keyboard.press("Escape");
  check(await page.locator("#nav-more-list").isHidden() && await page.evaluate(() => document.activeElement.id === "nav-more"), "Escape closes More and returns to its button");

  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  l = await layout();
  check(l.scrollX <= 0 && l.tops.length === 1, "390×844 (phone): the menu is one line of its own and nothing scrolls sideways", l);
  await shot("menu-390x844");
  check(errors.length === 0, "no page errors", errors);
  console.log(summary());
} finally {
  await close();
}
