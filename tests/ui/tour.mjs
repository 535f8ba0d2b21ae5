// Visits every page of the UI as an administrator in Debian's Chromium and
// takes a screenshot of each; used by tests/no_egress.rs to drive the UI
// while the test watches what leaves the machine.
//
//   node tests/ui/tour.mjs BASE_URL CONFIG_JSON
//
// CONFIG_JSON: {"admin":[name,pw], "screens": dir}
// Prints "ok - ..." per check and "ui: N passed, 0 failed" at the end.

import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [base, cfgText] = process.argv.slice(2);
const cfg = JSON.parse(cfgText);
const origin = new URL(base).origin;
const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

let passed = 0;
function check(cond, what, detail) {
  if (!cond) throw new Error(`${what}${detail === undefined ? "" : `: ${JSON.stringify(detail)}`}`);
  passed++;
  console.log(`ok - ${what}`);
}

const dir = mkdtempSync(join(tmpdir(), "cleannvr-ui-"));
const ctx = await chromium.launchPersistentContext(dir, {
  executablePath: "/usr/bin/chromium", headless: true, args: FLAGS, viewport: { width: 1280, height: 900 },
});
const requests = [];
try {
  const page = ctx.pages()[0] || (await ctx.newPage());
  page.setDefaultTimeout(30000);
  ctx.on("request", (r) => requests.push(r.url()));
  page.on("websocket", (ws) => requests.push(ws.url()));
  await page.goto(base);
  await page.locator("#login-view").waitFor({ state: "visible" });
  await page.fill("#login-user", cfg.admin[0]);
  await page.fill("#login-pass", cfg.admin[1]);
  await page.click("#login button[type=submit]");
  await page.locator("#nav").waitFor({ state: "visible" });

  // Live first: every camera tile plays.
  await page.goto(`${base}#/live`);
  await page.waitForFunction(() => {
    const tiles = [...document.querySelectorAll(".tile")];
    return tiles.length >= 2 && tiles.every((t) => t.querySelector(".badge").textContent === "Live");
  }, null, { timeout: 60000 });
  check(true, "every camera's live tile plays");
  await page.screenshot({ path: join(cfg.screens, "live.png") });

  const links = await page.$$eval("#nav a", (as) => as.filter((a) => !a.parentElement.hidden).map((a) => a.getAttribute("href")));
  check(links.length >= 5, "the administrator's menu lists the pages", links);
  for (const href of links) {
    await page.goto(`${base}${href}`);
    await page.waitForLoadState("networkidle").catch(() => {});
    await page.waitForTimeout(1500);
    const name = href.replace(/[^a-z]/gi, "") || "home";
    await page.screenshot({ path: join(cfg.screens, `${name}.png`) });
    const alerts = await page.$$eval("#view .error[role=alert]", (es) => es.filter((e) => e.offsetParent !== null && e.textContent.trim()).map((e) => e.textContent));
    check(alerts.length === 0, `page ${href} loads without an error`, alerts);
  }
  const foreign = requests.filter((u) => new URL(u).origin !== origin && new URL(u).origin !== origin.replace(/^http/, "ws"));
  check(foreign.length === 0, `all ${requests.length} browser requests went to the NVR's origin`, foreign);
  console.log(`ui: ${passed} passed, 0 failed`);
} catch (e) {
  console.log(`not ok - ${e.message}`);
  process.exitCode = 1;
} finally {
  await ctx.close().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
}
