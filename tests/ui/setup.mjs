// First-run setup in Debian's Chromium: a fresh server (no admin) shows the
// setup form, refuses a wrong code and mismatched passwords in plain words,
// and with the logged code creates the first admin and lands logged in.
//
//   node tests/ui/setup.mjs BASE_URL CONFIG_JSON
//
// CONFIG_JSON: {"code": the logged setup code, "admin": [name, pw], "screens": dir}
// Prints "ok - ..." per check and "ui: N passed, 0 failed" at the end.

import { join } from "node:path";
import { check, launch, summary } from "./common.mjs";

const [base, cfgText] = process.argv.slice(2);
const cfg = JSON.parse(cfgText);
const [name, pw] = cfg.admin;
const { page, close } = await launch();
const shot = (n) => page.screenshot({ path: join(cfg.screens, `${n}.png`), fullPage: true });
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));

try {
  await page.goto(base);
  await page.locator("#setup-view").waitFor({ state: "visible" });
  check(await page.locator("#login-view").isHidden(), "a fresh server shows setup, not a login nobody can pass");
  check(await page.locator("#nav").isHidden(), "no menu before setup");
  check(await page.evaluate(() => document.activeElement.id) === "setup-code", "the code field has the focus");
  check(await page.inputValue("#setup-user") === "admin", "the user name is filled in as admin");
  await shot("1-setup-form");

  // A wrong code: refused in plain words, nothing created.
  await page.fill("#setup-code", "AAAA-BBBB-CCCC-DDDD");
  await page.fill("#setup-user", name);
  await page.fill("#setup-pass", pw);
  await page.fill("#setup-pass2", pw);
  await page.click("#setup button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#setup-error").textContent !== "");
  const wrong = await page.textContent("#setup-error");
  check(/Wrong setup code/.test(wrong), "a wrong code is refused", wrong);
  await shot("2-wrong-code");

  // Mismatched passwords are caught before anything is sent.
  await page.fill("#setup-code", cfg.code);
  await page.fill("#setup-pass2", `${pw}x`);
  await page.click("#setup button[type=submit]");
  await page.waitForFunction(() => /differ/.test(document.querySelector("#setup-error").textContent));
  check(true, "mismatched passwords are refused");

  // The logged code: the first admin, logged in.
  await page.fill("#setup-pass", pw);
  await page.fill("#setup-pass2", pw);
  await page.click("#setup button[type=submit]");
  await page.locator("#nav").waitFor({ state: "visible" });
  check(await page.locator("#setup-view").isHidden(), "the setup form is gone");
  const who = await page.textContent("#who");
  check(who.includes(name) && /admin/i.test(who), "logged in as the new admin", who);
  check(await page.locator('#nav a[data-view="users"]').isVisible(), "the admin's menu shows Users");
  const notice = await page.textContent("#notice");
  check(notice.includes(`Administrator ${name} created`), "the page says what happened", notice);
  await shot("3-logged-in");

  // A reload stays logged in; after logging out it is the login form, not setup.
  await page.reload();
  await page.locator("#nav").waitFor({ state: "visible" });
  check(await page.locator("#setup-view").isHidden(), "a reload does not bring setup back");
  await page.click("#logout");
  await page.locator("#login-view").waitFor({ state: "visible" });
  check(await page.locator("#setup-view").isHidden(), "logged out: the login form, setup done");
  await shot("4-logged-out");
  check(errors.length === 0, "no script errors", errors);
  console.log(summary());
} finally {
  await close();
}
