// PTZ from the live view in Debian's Chromium: enlarging a PTZ camera's
// tile shows the pad; holding "Pan right" pans the camera (ipycam) while
// held and stops it when released.
//
//   node tests/ui/ptz.mjs BASE_URL CONFIG_JSON
//
// CONFIG_JSON: {"user": [name, pw], "camera": id, "screens": dir}
// Prints "ok - ..." per check and "ui: N passed, 0 failed" at the end.

import { join } from "node:path";
import { check, launch, login, summary } from "./common.mjs";

const [base, cfgText] = process.argv.slice(2);
const cfg = JSON.parse(cfgText);
const { page, close } = await launch();
const shot = (n) => page.screenshot({ path: join(cfg.screens, `${n}.png`), fullPage: true });
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
const pan = () => page.evaluate(async (id) =>
  (await (await fetch(`/api/cameras/${id}/ptz/status`)).json()).pan, cfg.camera);

try {
  await login(page, base, cfg.user);
  const tile = page.locator(`article.tile[data-camera="${cfg.camera}"]`);
  await tile.waitFor({ state: "visible", timeout: 60000 });
  await tile.locator('.tile-head button[aria-label^="Enlarge"]').click();
  const right = tile.locator('.ptz button[aria-label="Pan right"]');
  await right.waitFor({ state: "visible", timeout: 30000 });
  check(true, "an enlarged PTZ camera shows the pan/tilt pad");
  const before = await pan();
  await right.scrollIntoViewIfNeeded();
  const box = await right.boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await page.waitForTimeout(1500);
  await shot("1-ptz-held");
  await page.mouse.up();
  // The stop follows the last move's answer: wait until two reads agree.
  let after = await pan();
  for (let i = 0; i < 30; i++) {
    await page.waitForTimeout(300);
    const now = await pan();
    if (now === after) break;
    after = now;
  }
  check(after > before + 0.2, "holding Pan right pans the camera", { before, after });
  await page.waitForTimeout(800);
  const later = await pan();
  check(later === after, "releasing the button stops it", { after, later });
  await shot("2-ptz-released");
  check(errors.length === 0, "no page errors", errors);
  console.log(summary());
} finally {
  await close();
}
