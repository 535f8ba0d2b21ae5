// The Camera setup page (admins) in Chromium: reached from the Cameras
// health page, add a camera by URL, test it before saving (codec, size and a
// snapshot), save, edit, disable and remove it; the stored password is never
// shown. "Keep footage with events" (retain_event_days): labelled, with a
// hint, a value the server would refuse is refused here with the reason,
// a good one is saved and shown again after a reload and a disable.
//
//   node tests/ui/camera_admin.mjs BASE_URL CONFIG_JSON
//
// CONFIG_JSON: {"admin": [name, pw], "url": RTSP URL with credentials,
// "secret": the password in it, "screens": dir}.
// Prints "ok - ..." per check and "ui: N passed, 0 failed" at the end.

import { join } from "node:path";
import { check, launch, login, summary } from "./common.mjs";

const [base, cfgText] = process.argv.slice(2);
const cfg = JSON.parse(cfgText);
const { page, close } = await launch();
const shot = (n) => page.screenshot({ path: join(cfg.screens, `${n}.png`), fullPage: true });
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
const row = (name) => page.locator("#cameras-list tr", { hasText: name });

try {
  await login(page, base, cfg.admin);
  check(await page.locator('#nav a[data-view="cameras"]').isVisible(), "the admin's menu shows Cameras (health)");
  check(await page.locator('#nav a[data-view="camera-setup"]').isVisible(), "the admin's menu shows Camera setup");
  await page.click('#nav a[data-view="cameras"]');
  await page.locator("#cams-table").waitFor({ state: "visible" });
  await page.click('#view a[href="#/camera-setup"]');
  await page.locator("h1", { hasText: "Camera setup" }).waitFor({ state: "visible" });
  check(/#\/camera-setup$/.test(page.url()), "the health page links to Camera setup", page.url());
  await row("a").first().waitFor({ state: "visible" });
  await page.click("text=Add camera");
  await page.fill("#camera-edit input[name=id]", "yard");
  await page.fill("#camera-edit input[name=name]", "Yard camera");
  await page.fill("#camera-edit input[name=url]", cfg.url);

  await page.click("text=Test connection");
  await page.locator(".test-result p.ok").waitFor({ state: "visible", timeout: 60000 });
  const verdict = await page.textContent(".test-result p.ok");
  check(/avc1\.\S+, 640×360/.test(verdict), "the test shows codec and size", verdict);
  const img = page.locator(".test-snapshot");
  await img.waitFor({ state: "visible" });
  check(await img.evaluate((i) => i.complete && i.naturalWidth > 0), "the test shows a snapshot");
  await shot("1-tested");

  await page.click('#camera-edit button[type=submit]');
  await row("Yard camera").waitFor({ state: "visible" });
  check(true, "the saved camera is listed");
  const listed = await page.textContent("#cameras-list");
  check(!listed.includes(cfg.secret), "the list never shows the password");
  // The page refreshes each camera's state: the new camera reaches the peer.
  await page.waitForFunction(() => /streaming/.test([...document.querySelectorAll("#cameras-list tr")].find((r) => r.textContent.includes("Yard"))?.textContent || ""), null, { timeout: 180000 });
  check(true, "the added camera is shown streaming without reloading the page");
  await shot("2-added");

  await row("Yard camera").locator("text=Edit").click();
  check(await page.inputValue("#camera-edit input[name=url]") !== cfg.url, "the edit form shows the URL without its password");
  check(!(await page.inputValue("#camera-edit input[name=url]")).includes(cfg.secret), "no password in the edit form");
  check(/password is stored/.test(await page.textContent("#camera-edit")), "the form says a password is stored");
  await page.fill("#camera-edit input[name=name]", "Back yard");
  await page.click('#camera-edit button[type=submit]');
  await row("Back yard").waitFor({ state: "visible" });
  check(true, "an edit is saved");

  // --- Keep footage with events (retain_event_days) --------------------------
  const evDays = page.locator("#camera-edit input[name=retain_event_days]");
  const evMsg = page.locator("#camera-edit .field-error");
  const editOf = async (name) => { await row(name).locator("text=Edit").click(); await evDays.waitFor({ state: "visible" }); };
  await editOf("Back yard");
  const label = await page.textContent(`label[for="${await evDays.getAttribute("id")}"]`);
  check(/^Keep footage with events/.test(label), "the editor has a labelled field for retain_event_days", label);
  const hint = await evDays.evaluate((i) => i.getAttribute("aria-describedby").split(" ").map((id) => document.getElementById(id).textContent).join(" | "));
  check(/event \(motion, tampering/.test(hint), "with a short hint, tied to the field", hint);
  check((await evDays.inputValue()) === "0", "0 while not set", await evDays.inputValue());
  await page.fill("#camera-edit input[name=retain_days]", "30");
  /** Types `v`, tries to save; returns the message shown (and checks the form stayed open). */
  async function refused(v) {
    await evDays.fill(v);
    await page.click("#camera-edit button[type=submit]");
    await page.waitForTimeout(300);
    check(await page.locator("#camera-edit form").isVisible(), `${v}: nothing is saved, the form stays open`);
    check((await evDays.getAttribute("aria-invalid")) === "true", `${v}: the field is marked invalid`);
    return (await evMsg.textContent()) || "";
  }
  let said = await refused("10");
  check(/^Must be more than the 30 days recordings are kept/.test(said), "a value not above Keep recordings is refused with the reason", said);
  await shot("5-event-days-refused");
  said = await refused("-3");
  check(/whole number of days/.test(said), "a negative number is refused", said);
  await page.fill("#camera-edit input[name=retain_days]", "0");
  said = await refused("90");
  check(/nothing to extend/.test(said), "with no age limit there is nothing to extend", said);
  await page.fill("#camera-edit input[name=retain_days]", "30");
  await evDays.fill("90");
  check((await evMsg.textContent()) === "" && (await evDays.getAttribute("aria-invalid")) === null, "90 beside 30 is fine", await evMsg.textContent());
  await page.click("#camera-edit button[type=submit]");
  await page.locator("#camera-edit form").waitFor({ state: "detached" });
  await page.reload();
  await row("Back yard").waitFor({ state: "visible" });
  await editOf("Back yard");
  check((await evDays.inputValue()) === "90", "saved: 90 is shown again after a reload", await evDays.inputValue());
  await page.click("#camera-edit button:text-is('Cancel')");

  await row("Back yard").locator("button", { hasText: "Disable" }).click();
  await row("Back yard").locator("text=disabled").waitFor({ state: "visible" });
  check(true, "a camera can be disabled");
  await editOf("Back yard");
  check((await evDays.inputValue()) === "90", "disabling keeps Keep footage with events", await evDays.inputValue());
  await page.click("#camera-edit button:text-is('Cancel')");
  await shot("3-disabled");

  await row("Back yard").locator("button", { hasText: "Remove" }).click();
  await page.click("text=Remove Back yard");
  await row("Back yard").waitFor({ state: "detached" });
  check(true, "a camera can be removed");
  check(errors.length === 0, "no script errors", errors);
  await shot("4-removed");
  console.log(summary());
} finally {
  await close();
}
