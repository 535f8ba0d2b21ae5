// The export form's redaction boxes in Chromium: a still frame of the chosen
// camera appears, the operator drags two boxes with the mouse, removes one,
// and starts a redacted export, which must finish and be listed as redacted in
// the disclosure register an admin sees. The Rust side
// (tests/export_working_copy.rs) then decodes the exported file.
//
//   node tests/ui/redact.mjs BASE_URL CONFIG_JSON
//
// CONFIG_JSON: {"op": [name, pw], "admin": [name, pw], "camera": id, "start": local, "end": local
// (datetime-local values in the browser's zone), "box": [x, y, w, h]
// (fractions to draw), "screens": dir}.

import { join } from "node:path";
import { check, launch, login, summary } from "./common.mjs";

const [base, cfgText] = process.argv.slice(2);
const cfg = JSON.parse(cfgText);
const { page, close } = await launch();
const shot = (n) => page.screenshot({ path: join(cfg.screens, `${n}.png`), fullPage: true });
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));

/** Drags with the mouse from one point to another, given as fractions of the frame. */
async function drag([x0, y0], [x1, y1]) {
  // The mouse reaches only what is in the viewport.
  await page.locator("#export-redact-stage").scrollIntoViewIfNeeded();
  const r = await page.locator("#export-redact-frame").boundingBox();
  await page.mouse.move(r.x + x0 * r.width, r.y + y0 * r.height);
  await page.mouse.down();
  await page.mouse.move(r.x + ((x0 + x1) / 2) * r.width, r.y + ((y0 + y1) / 2) * r.height, { steps: 4 });
  await page.mouse.move(r.x + x1 * r.width, r.y + y1 * r.height, { steps: 4 });
  await page.mouse.up();
}

try {
  await login(page, base, cfg.op);
  const q = new URLSearchParams({ camera: cfg.camera, start: cfg.start, end: cfg.end });
  await page.goto(`${base}#/export?${q}`);
  await page.locator(`#export-form input[value="${cfg.camera}"]:checked`).waitFor({ state: "attached" });
  check(await page.locator("#export-redact-panel").isHidden(), "the redaction panel stays closed until asked for");
  await page.check("#export-redact");
  await page.locator("#export-redact-stage").waitFor({ state: "visible" });
  await page.waitForFunction(() => document.querySelector("#export-redact-frame").naturalWidth > 0);
  const note = await page.textContent("#export-redact-frame-note");
  check(/^Frame recorded at /.test(note), "a frame from the start of the range is shown", note);
  const nat = await page.$eval("#export-redact-frame", (i) => [i.naturalWidth, i.naturalHeight]);
  check(nat[0] === 640, "the frame is the camera's picture", nat);

  const [x, y, w, h] = cfg.box;
  await drag([x, y], [x + w, y + h]);
  // A second box, drawn from its bottom right corner up, then removed.
  await drag([0.8, 0.9], [0.6, 0.6]);
  check(await page.locator("#export-redact-boxes li").count() === 2, "two boxes are listed", await page.locator("#export-redact-panel").innerHTML());
  check(await page.locator(".redact-layer .redact-box").count() === 2, "and drawn over the frame");
  const second = await page.textContent("#export-redact-boxes li:nth-child(2)");
  check(/from 60\.\d % across, 60\.\d % down/.test(second), "a box dragged upwards starts at its top left", second);
  // A click is not a box.
  await drag([0.5, 0.5], [0.5, 0.5]);
  check(await page.locator("#export-redact-boxes li").count() === 2, "a click adds no box");
  await shot("1-two-boxes");
  await page.click('#export-redact-boxes button[aria-label="Remove box 2"]');
  check(await page.locator("#export-redact-boxes li").count() === 1, "a box can be removed");
  const first = await page.textContent("#export-redact-boxes li");
  check(first.includes(`from ${(x * 100).toFixed(0)}`), "the box left is the first one", first);

  await page.fill("#export-reason", "SAR 2026/21: the requester only");
  await page.fill("#export-recipient", "the data subject");
  await page.locator("#export-form").screenshot({ path: join(cfg.screens, "2-form.png") });
  await page.click("#export-form button[type=submit]");
  const card = page.locator("article.job").first();
  await card.waitFor();
  await page.waitForFunction(() => {
    const c = document.querySelector("article.job");
    return c && (c.classList.contains("done") || c.classList.contains("failed"));
  }, null, { timeout: 600000 });
  check(await card.evaluate((c) => c.classList.contains("done")), "the redacted export finishes", await card.textContent());
  const files = await card.locator("li a").allTextContents();
  check(files.includes(`${cfg.camera}-redacted.mp4`), "it offers the redacted copy", files);
  console.log(`EXPORT ${await card.getAttribute("data-export")}`);
  await shot("3-done");

  // An admin sees the redacted copy in the disclosure register, with its recipient.
  await page.click("#logout");
  await page.locator("#login-view").waitFor({ state: "visible" });
  await login(page, base, cfg.admin);
  await page.goto(`${base}#/disclosures`);
  const row = page.locator("table.disclosures tbody tr", { hasText: "the data subject" });
  await row.first().waitFor();
  check(await row.count() === 1, "the export is in the register once", await page.locator("table.disclosures").innerHTML());
  const text = await row.textContent();
  check(text.includes("(redacted)") && text.includes("SAR 2026/21") && text.includes(cfg.camera), "as a redacted copy of the camera, with its reason", text);
  await shot("4-register");
  check(errors.length === 0, "no script errors", errors);
  console.log(summary());
} finally {
  await close();
}
