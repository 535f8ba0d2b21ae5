// "Find cameras" on the Camera setup page in Chromium, against ipycam (a
// third-party ONVIF camera simulator) in the test's private namespace: the
// device is listed, added with its ONVIF credentials after a connection
// test (a wrong password is refused in plain words), starts streaming, and a
// second search shows it added. The password never comes back to the page.
//
//   node tests/ui/camera_discovery.mjs BASE_URL CONFIG_JSON
//
// CONFIG_JSON: {"admin": [name, pw], "user": ONVIF user, "password": its
// password, "main": the profile token to record, "sub_url": the grid
// stream's URI (both as /api/onvif/profiles proposes them), "screens": dir}.
// The streams are read from the camera with the typed credentials and the
// proposal is saved; the edit form reads them again with the stored ones.
// Prints "ok - ..." per check and "ui: N passed, 0 failed" at the end.

import { join } from "node:path";
import { check, launch, login, summary } from "./common.mjs";

const [base, cfgText] = process.argv.slice(2);
const cfg = JSON.parse(cfgText);
const { page, close } = await launch();
const shot = (n) => page.screenshot({ path: join(cfg.screens, `${n}.png`), fullPage: true });
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
const found = (name) => page.locator("#camera-discovery tr", { hasText: name });
const listed = (name) => page.locator("#cameras-list tr", { hasText: name });

try {
  await login(page, base, cfg.admin);
  await page.click('#nav a[data-view="camera-setup"]');
  await page.locator("h1", { hasText: "Camera setup" }).waitFor({ state: "visible" });
  await listed("yard").first().waitFor({ state: "visible" });

  await page.click("#find-cameras");
  await found("RigCam").waitFor({ state: "visible", timeout: 60000 });
  const row = await found("RigCam").textContent();
  check(row.includes("127.0.0.1:8080"), "the found camera shows its ONVIF address", row);
  check(await found("RigCam").locator("button", { hasText: "Add" }).isVisible(), "a camera not yet added can be added");
  await shot("1-found");

  await found("RigCam").locator("button", { hasText: "Add" }).click();
  const form = page.locator("#camera-edit form");
  await form.waitFor({ state: "visible" });
  check(await page.inputValue("#camera-edit input[name=id]") === "rigcam", "the id is suggested from the camera's name");
  check((await form.textContent()).includes("127.0.0.1:8080"), "the form names the ONVIF device");
  check(await page.inputValue("#camera-edit input[name=url]") === "", "no RTSP URL needs typing");
  await page.fill("#camera-edit input[name=username]", cfg.user);
  await page.fill("#camera-edit input[name=password]", "not the password");
  await page.click("text=Test connection");
  await page.locator(".test-result p.error").waitFor({ state: "visible", timeout: 60000 });
  const refused = await page.textContent(".test-result p.error");
  check(/not authorized/.test(refused), "a wrong ONVIF password is refused in plain words", refused);

  const readStreams = () => page.click('#camera-edit button:has-text("Read streams")');
  await readStreams();
  await page.locator(".onvif-streams .error").waitFor({ state: "visible", timeout: 60000 });
  const noStreams = await page.textContent(".onvif-streams .error");
  check(/not authorized/.test(noStreams), "reading the streams with a wrong password says why", noStreams);

  await page.fill("#camera-edit input[name=password]", cfg.password);
  await readStreams();
  const mainSel = "#camera-edit select[name=onvif-main]";
  const subSel = "#camera-edit select[name=onvif-sub]";
  await page.locator(mainSel).waitFor({ state: "visible", timeout: 60000 });
  const offered = await page.locator(`${mainSel} option`).allTextContents();
  check(offered.length >= 2 && offered.every((o) => /×/.test(o)), "the camera's streams are listed with their sizes", offered);
  check(await page.inputValue(mainSel) === cfg.main, "its largest stream is proposed for recording", await page.inputValue(mainSel));
  check(await page.inputValue(subSel) === cfg.sub_url, "its smaller stream for live grids", await page.inputValue(subSel));
  await page.click("text=Test connection");
  await page.locator(".test-result p.ok").waitFor({ state: "visible", timeout: 60000 });
  const verdict = await page.textContent(".test-result p.ok");
  check(/avc1\.\S+, 640×360/.test(verdict), "the test resolves the stream over ONVIF and shows codec and size", verdict);
  const img = page.locator(".test-snapshot");
  await img.waitFor({ state: "visible" });
  check(await img.evaluate((i) => i.complete && i.naturalWidth > 0), "the test shows a snapshot");
  await shot("2-tested");

  await page.click('#camera-edit button[type=submit]');
  await listed("RigCam").waitFor({ state: "visible" });
  check(true, "the added camera is listed");
  check((await listed("RigCam").textContent()).includes("ONVIF 127.0.0.1"), "listed by its ONVIF address");
  await page.waitForFunction(() => /streaming/.test([...document.querySelectorAll("#cameras-list tr")].find((r) => r.textContent.includes("RigCam"))?.textContent || ""), null, { timeout: 180000 });
  check(true, "the added camera is shown streaming without reloading the page");
  check(!(await page.content()).includes(cfg.password), "the password is not in the page");
  await shot("3-added");

  await page.click("#find-cameras");
  await found("Added (rigcam)").waitFor({ state: "visible", timeout: 60000 });
  check(await found("RigCam").locator("button", { hasText: "Add" }).count() === 0, "a second search marks it added, with no Add button");
  await listed("RigCam").locator("text=Edit").click();
  check(/password is stored/.test(await page.textContent("#camera-edit")), "its edit form says an ONVIF password is stored");
  check(await page.inputValue("#camera-edit input[name=password]") === "", "and does not show it");
  check(await page.inputValue("#camera-edit input[name=username]") === cfg.user, "the ONVIF username is shown for editing");
  await readStreams();
  await page.locator(mainSel).waitFor({ state: "visible", timeout: 60000 });
  check(await page.inputValue(mainSel) === cfg.main && await page.inputValue(subSel) === cfg.sub_url,
    "the edit form reads the streams with the stored password and shows the saved choice");
  check(errors.length === 0, "no script errors", errors);
  await shot("4-marked-added");
  console.log(summary());
} finally {
  await close();
}
