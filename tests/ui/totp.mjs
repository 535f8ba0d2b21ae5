// Two-step login in Chromium: an admin made to enrol first
// ([auth] require_totp_for_admins), the QR code read back by zbarimg (an
// outside decoder) from a screenshot, the confirming code and the later
// login code computed by oathtool (an outside implementation of RFC 6238).
// Usage: node totp.mjs BASE_URL '{"admin":[name,pw],"shots":DIR}'

import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { check, summary, launch } from "./common.mjs";

const [base, cfgJson] = process.argv.slice(2);
const cfg = JSON.parse(cfgJson);
const [name, pw] = cfg.admin;
const shot = (page, file) => page.screenshot({ path: join(cfg.shots, file), fullPage: true });
const oath = (secret, at) => execFileSync("oathtool", ["--totp", "-b", "-N", `@${at}`, secret]).toString().trim();
const now = () => Math.floor(Date.now() / 1000);

const { ctx, page, close } = await launch();
const errors = [];
// Every URL the browser asks for (pages, scripts, images, sockets), to show that
// drawing the QR code sends the secret nowhere but to this server.
const asked = [];
ctx.on("request", (r) => asked.push(r.url()));
page.on("websocket", (w) => asked.push(w.url()));
const origin = new URL(base);
const elsewhere = () => asked.filter((u) => {
  const url = new URL(u);
  return !["blob:", "data:"].includes(url.protocol) && url.host !== origin.host;
});
// 401s are expected here: /api/me before login, and the login step asking
// for the code and refusing a wrong one; the checks above say which.
page.on("console", (m) => { if (m.type() === "error" && !m.text().includes("status of 401")) errors.push(m.text()); });
page.on("pageerror", (e) => errors.push(String(e)));
try {
  await page.goto(base);
  await page.locator("#login-view").waitFor({ state: "visible" });
  await page.fill("#login-user", name);
  await page.fill("#login-pass", pw);
  await page.click("#login button[type=submit]");
  await page.locator("#totp-start").waitFor({ state: "visible" });
  check(new URL(page.url()).hash === "#/account", "an admin without two-step login lands on the account page", page.url());
  const shown = await page.$$eval("#nav li:not([hidden]) a", (as) => as.map((a) => a.dataset.view));
  check(JSON.stringify(shown) === '["account"]', "the menu offers only the account page", shown);
  await shot(page, "1-must-enrol.png");

  await page.fill("#totp-password", pw);
  await page.click("#totp-start button[type=submit]");
  const qr = page.locator("#totp-qr");
  await qr.waitFor({ state: "visible" });
  await page.waitForFunction(() => document.querySelector("#totp-qr").naturalWidth > 0);
  const secret = (await page.textContent("#totp-secret")).replace(/\s+/g, "");
  check(/^[A-Z2-7]{32}$/.test(secret), "the base32 secret is shown for typing in", secret);
  await qr.screenshot({ path: join(cfg.shots, "qr.png") });
  await shot(page, "2-qr.png");
  const decoded = execFileSync("zbarimg", ["--raw", "-q", join(cfg.shots, "qr.png")]).toString().trim();
  check(decoded.startsWith(`otpauth://totp/cleannvr:${name}?secret=${secret}&`), "zbarimg reads the otpauth URI with that secret from the QR code", decoded);
  check(asked.some((u) => u.includes("/api/me/totp")) && elsewhere().length === 0, "enrolling and drawing the QR code asked nothing of any host but this server", { elsewhere: elsewhere(), asked: asked.length });

  await page.fill("#totp-code", oath(secret, now()));
  await page.click("#totp-confirm button[type=submit]");
  await page.locator("#totp-recovery").waitFor({ state: "visible" });
  const codes = await page.$$eval("#totp-recovery li", (li) => li.map((x) => x.textContent));
  check(codes.length === 10 && codes.every((c) => /^[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}$/.test(c)), "ten recovery codes are shown once", codes);
  await shot(page, "3-recovery.png");
  await page.click("#totp-done");
  await page.locator('#nav a[data-view="users"]').waitFor({ state: "visible" });
  check(true, "after enrolment the whole admin menu is back");

  await page.click("#logout");
  await page.locator("#login-view").waitFor({ state: "visible" });
  await page.fill("#login-user", name);
  await page.fill("#login-pass", pw);
  await page.click("#login button[type=submit]");
  await page.locator("#login-code-wrap").waitFor({ state: "visible" });
  check((await page.textContent("#login-error")).includes("code"), "the password alone asks for the code");
  await shot(page, "4-code-step.png");
  await page.fill("#login-code", "000000" === oath(secret, now() + 30) ? "111111" : "000000");
  await page.click("#login button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#login-error").textContent.includes("wrong"));
  check(true, "a wrong code is refused and the password kept");
  await page.fill("#login-code", oath(secret, now() + 30));
  await page.click("#login button[type=submit]");
  await page.locator('#nav a[data-view="users"]').waitFor({ state: "visible" });
  check(true, "the next code from the app logs in");
  await page.goto(`${base}/#/account`);
  await page.locator("#totp-disable").waitFor({ state: "visible" });
  check((await page.textContent("#totp-status")).includes("left: 10"), "the account page says two-step login is on");
  await shot(page, "5-account.png");
  check(errors.length === 0, "no console errors", errors);
} finally {
  await close();
}
console.log(summary());
