// Camera events on the playback timeline in Debian's Chromium: a motion
// event the camera reported shows as a mark on its lane, at its time.
//
//   node tests/ui/events.mjs BASE_URL CONFIG_JSON
//
// CONFIG_JSON: {"user": [name, pw], "camera": id, "at": RFC 3339 start of the event, "screens": dir}
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
  check(errors.length === 0, "no page errors", errors);
  console.log(summary());
} finally {
  await close();
}
