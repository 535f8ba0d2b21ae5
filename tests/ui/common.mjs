// Shared by the Chromium scripts in this folder: launching Debian's Chromium
// through playwright-core (never a downloaded browser), checks, and login.

import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The flags that keep Chromium off the network and working headless as root here. */
export const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

let passed = 0;

/** Throws (failing the script) unless `cond`; prints "ok - what" otherwise. */
export function check(cond, what, detail) {
  if (!cond) throw new Error(`${what}${detail === undefined ? "" : `: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`}`);
  passed++;
  console.log(`ok - ${what}`);
}

/** The summary line the Rust harnesses look for. */
export function summary() {
  return `ui: ${passed} passed, 0 failed`;
}

/** A fresh browser profile; `close()` removes it. `extraArgs` are added to [`FLAGS`]. */
export async function launch(extraArgs = []) {
  const dir = mkdtempSync(join(tmpdir(), "cleannvr-ui-"));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [...FLAGS, ...extraArgs],
    viewport: { width: 1280, height: 900 },
  });
  const page = ctx.pages()[0] || (await ctx.newPage());
  page.setDefaultTimeout(60000);
  const close = async () => {
    await ctx.close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  };
  return { ctx, page, close };
}

/** Logs in through the form and waits for the menu. */
export async function login(page, base, [name, pw]) {
  await page.goto(base);
  await page.locator("#login-view").waitFor({ state: "visible" });
  await page.fill("#login-user", name);
  await page.fill("#login-pass", pw);
  await page.click("#login button[type=submit]");
  await page.locator("#nav").waitFor({ state: "visible" });
}
