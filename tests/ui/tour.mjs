// Visits every page of the UI as an administrator in Debian's Chromium and
// takes a screenshot of each; used by tests/no_egress.rs to drive the UI
// while the test watches what leaves the machine.
//
//   node tests/ui/tour.mjs BASE_URL CONFIG_JSON
//
// CONFIG_JSON: {"admin":[name,pw], "screens": dir}
// Prints "ok - ..." per check and "ui: N passed, 0 failed" at the end.

import { join } from "node:path";
import { check, launch, login, summary } from "./common.mjs";

const [base, cfgText] = process.argv.slice(2);
const cfg = JSON.parse(cfgText);
const origin = new URL(base).origin;
const { ctx, page, close } = await launch();
const requests = [];
try {
  ctx.on("request", (r) => requests.push(r.url()));
  page.on("websocket", (ws) => requests.push(ws.url()));
  await login(page, base, cfg.admin);

  // Live first: every camera tile plays.
  await page.goto(`${base}#/live`);
  await page.waitForFunction(() => {
    const tiles = [...document.querySelectorAll(".tile")];
    // The badge follows the camera's status; the picture needs its first
    // fragment of every track (a camera with sound has two), so wait for both.
    return tiles.length >= 2 && tiles.every((t) => t.querySelector(".badge").textContent === "Live" && t.querySelector("video").readyState >= 2);
  }, null, { timeout: 60000 }).catch(() => { /* the check below says which tile did not play */ });
  const live = await page.$$eval(".tile", (ts) => ts.map((t) => [t.dataset.camera, t.querySelector(".badge").textContent, t.querySelector("video").readyState]));
  check(live.length >= 2 && live.every(([, badge, ready]) => badge === "Live" && ready >= 2), "every camera's live tile plays", live);
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
  console.log(summary());
} catch (e) {
  console.log(`not ok - ${e.message}`);
  process.exitCode = 1;
} finally {
  await close();
}
