// The archive tier in Chromium: the Storage page shows what /api/archive says
// (cluster reachable or not, backlog, last upload, last error, per camera) and no
// key; the playback timeline draws archive-only footage apart from local footage.
//
//   node tests/ui/archive.mjs BASE_URL CONFIG_JSON
//
// CONFIG_JSON: {"admin": [name, pw], "camera": id, "archived_at": RFC 3339 time
// inside archive-only footage, "reachable": bool expected, "secrets": [strings the
// page must not show], "screens": dir, "name": screenshot prefix}.

import { join } from "node:path";
import { check, launch, login, summary } from "./common.mjs";

const [base, cfgText] = process.argv.slice(2);
const cfg = JSON.parse(cfgText);
const { page, close } = await launch();
const shot = (n) => page.screenshot({ path: join(cfg.screens, `${cfg.name}-${n}.png`), fullPage: true });
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));

try {
  await login(page, base, cfg.admin);

  // The backlog grows with every pass while the cluster is down, so the page's figure
  // (fetched when the page loads) is checked between the API's before and after it.
  const archive = () => page.evaluate(async () => (await fetch("/api/archive")).json());
  const before = await archive();
  await page.goto(`${base}#/storage`);
  await page.locator("#archive-reachable").waitFor();
  const backlog = await page.textContent("#archive-backlog dd");
  const api = await archive();
  check(api.reachable === cfg.reachable, "the API says whether the cluster answers", api);
  const reach = await page.textContent("#archive-reachable dd");
  check(reach.startsWith(cfg.reachable ? "reachable" : "unreachable"), "the page says so", reach);
  const count = /^(\d+) segments/.exec(backlog);
  check(count && before.backlog_segments <= +count[1] && +count[1] <= api.backlog_segments,
    "the page shows the API's backlog", { backlog, before: before.backlog_segments, after: api.backlog_segments });
  const row = page.locator("#archive tbody tr", { hasText: cfg.camera });
  check(await row.count() === 1, "the camera has a row in the archive table");
  if (api.last_error) {
    const shown = await page.textContent("#archive-error");
    check(shown.includes(api.last_error) && shown.includes("Recording continues"), "the last error is shown", api.last_error);
  }
  const text = await page.textContent("body");
  for (const s of cfg.secrets) check(!text.includes(s), "no key on the page");
  await shot("storage");

  await page.goto(`${base}#/playback?camera=${cfg.camera}&t=${encodeURIComponent(cfg.archived_at)}`);
  const arch = page.locator(`#pb-timeline .lane[data-camera="${cfg.camera}"] .archived`);
  await arch.first().waitFor();
  const at = Date.parse(cfg.archived_at);
  const spans = await arch.evaluateAll((els) => els.map((e) => [Number(e.dataset.start), Number(e.dataset.end)]));
  check(spans.some(([a, b]) => a <= at && at < b), "the archived footage is drawn as archive-only", spans);
  check(await page.locator("#pb-archive-legend").isVisible(), "the legend names it");
  check(await page.locator(`#pb-timeline .lane[data-camera="${cfg.camera}"] .range`).count() > 0, "recorded ranges are still drawn");
  // Zoomed in to 30 s around it, the archive-only part is plainly drawn.
  await page.selectOption("#pb-zoom", "30000");
  await page.waitForFunction((c) => {
    const el = document.querySelector(`#pb-timeline .lane[data-camera="${c}"] .archived`);
    return el && el.getBoundingClientRect().width > 20;
  }, cfg.camera);
  check(errors.length === 0, "no script errors", errors);
  await shot("timeline");
  console.log(summary());
} finally {
  await close();
}
