// The export form's redaction boxes in Chromium: a still frame of the chosen
// camera appears, the operator drags two boxes with the mouse, removes one,
// makes the other move (selects it, scrubs the preview to a later time, drags
// and resizes it there: a second key point; a third, added and deleted), and
// starts a redacted export, which must finish and be listed as redacted in
// the disclosure register an admin sees. The Rust side
// (tests/export_working_copy.rs) then decodes the exported file.
//
//   node tests/ui/redact.mjs BASE_URL CONFIG_JSON
//
// CONFIG_JSON: {"op": [name, pw], "admin": [name, pw], "camera": id, "start": local, "end": local
// (datetime-local values in the browser's zone, whole seconds apart), "box": [x, y, w, h]
// (fractions to draw), "shift": dx (how far right to move it at the later time),
// "grow": dw (how much wider and higher to make it there), "screens": dir}.

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
  await page.waitForFunction(() => !document.querySelector("#export-redact-stage").hasAttribute("aria-busy"));
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


  // The box moves: select it, scrub to a later time, move and resize it there.
  const boxLeft = () => page.$eval(".redact-layer .redact-box", (b) => parseFloat(b.style.left) / 100);
  const keys = () => page.locator("#export-redact-boxes .redact-keys li").count();
  const ticks = page.locator("#export-redact-ticks .redact-tick");
  check(await ticks.count() === 1, "the still box's key point is a tick under the preview slider");
  check(/still for the whole range/.test(await page.textContent("#export-redact-boxes li")), "a box drawn once stays still");
  await drag([x + w / 2, y + h / 2], [x + w / 2, y + h / 2]);
  check(await page.locator("#export-redact-boxes > li.selected").count() === 1, "clicking a box selects it");
  check(await page.locator(".redact-box.selected .redact-handle").count() === 1, "with a handle to resize it");
  check(await keys() === 0 && (await ticks.count()) === 1, "a click adds no key point");
  const frameNote = () => page.textContent("#export-redact-frame-note");
  /** Waits until the newest frame asked for is shown. */
  const settled = () => page.waitForFunction(() => !document.querySelector("#export-redact-stage").hasAttribute("aria-busy"));
  /** Moves the preview slider with the keyboard and waits for the frame there. */
  async function scrubTo(keysPressed) {
    await page.focus("#export-redact-time");
    for (const k of keysPressed) await page.keyboard.press(k);
    await settled();
    return frameNote();
  }
  const max = Number(await page.getAttribute("#export-redact-time", "max"));
  check(max >= 3, "the slider spans the range in seconds", max);
  const later = await scrubTo(["End", "ArrowLeft"]);
  check(/\(\+[1-9]\.\d s\)\.$/.test(later), "scrubbing shows a frame from later in the range", later);
  check(Math.abs(await boxLeft() - x) < 0.002, "a still box stays where it was drawn at other times");
  const [dx, dw] = [cfg.shift, cfg.grow];
  await drag([x + w / 2, y + h / 2], [x + dx + w / 2, y + h / 2]);
  check(await keys() === 2 && (await ticks.count()) === 2, "moving it at another time adds a key point", await page.textContent("#export-redact-boxes"));
  check(/moves through 2 key points/.test(await page.textContent("#export-redact-boxes > li")), "the box is listed as moving");
  // Resizing on the same frame changes that key point, adding none.
  await drag([x + dx + w, y + h], [x + dx + w + dw, y + h + dw]);
  check(await keys() === 2, "resizing on the same frame changes its key point");
  const [bx, , bw] = await page.$eval(".redact-layer .redact-box", (b) => ["left", "top", "width"].map((k) => parseFloat(b.style[k]) / 100));
  check(Math.abs(bx - (x + dx)) < 0.005 && Math.abs(bw - (w + dw)) < 0.005, "the box is where it was moved and as wide as it was made", [bx, bw]);
  await shot("2-second-key");

  // In between, the box is drawn part of the way.
  const mid = await scrubTo(["Home", "ArrowRight"]);
  const between = await boxLeft();
  check(between > x + 0.001 && between < x + dx - 0.001, "between key points the box is drawn part of the way", [mid, between]);
  // A third key point, there, and deleting it puts the box back on its straight path.
  await drag([between + w / 2, y + h / 2], [between + w / 2, y + h / 2 + 0.4]);
  check(await keys() === 3 && (await ticks.count()) === 3, "a third key point", await page.textContent("#export-redact-boxes"));
  await shot("3-third-key");
  await page.click('#export-redact-boxes button[aria-label="Delete key point 2 of box 1"]');
  check(await keys() === 2 && (await ticks.count()) === 2, "a key point can be deleted");
  check(Math.abs(await boxLeft() - between) < 0.002, "and the box is back on its path");

  // A tick goes to its key point's frame.
  await ticks.last().click();
  await settled();
  check(Math.abs(await boxLeft() - (x + dx)) < 0.002, "a tick shows the box at its key point", await frameNote());

  await page.fill("#export-reason", "SAR 2026/21: the requester only");
  await page.fill("#export-recipient", "the data subject");
  await page.locator("#export-form").screenshot({ path: join(cfg.screens, "4-form.png") });
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
  await shot("5-done");

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
  await shot("6-register");
  check(errors.length === 0, "no script errors", errors);
  console.log(summary());
} finally {
  await close();
}
