// The Code of Practice report page and the camera register in Chromium: Camera
// setup flags a camera without a purpose and one whose review is overdue; the
// Report page shows the period's figures as the API gives them, and printing it
// leaves the menus and the form off the page.
//
//   node tests/ui/report.mjs BASE_URL CONFIG_JSON
//
// CONFIG_JSON: {"admin": [name, pw], "day": YYYY-MM-DD with footage of camera a,
// "screens": dir}.

import { join } from "node:path";
import { check, launch, login, summary } from "./common.mjs";

const [base, cfgText] = process.argv.slice(2);
const cfg = JSON.parse(cfgText);
const { page, close } = await launch();
const shot = (n) => page.screenshot({ path: join(cfg.screens, `${n}.png`), fullPage: true });
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));

try {
  await login(page, base, cfg.admin);

  await page.goto(`${base}#/camera-setup`);
  const regA = page.locator('.register[data-id="a"]');
  await regA.waitFor();
  check((await regA.textContent()).includes("Review overdue (due 2020-01-31)"), "an overdue review is flagged", await regA.textContent());
  const regB = page.locator('.register[data-id="b"]');
  check((await regB.textContent()).includes("No purpose stated"), "a missing purpose is flagged", await regB.textContent());
  await shot("1-camera-setup");

  // Edit b's purpose and review date through the form: the flag goes.
  await page.click('button[aria-label="Edit b"]');
  await page.fill('textarea[name="purpose"]', "Staff safety in the yard");
  await page.fill('input[name="review_date"]', "2099-01-31");
  await page.click('#camera-edit button[type="submit"]');
  await page.waitForFunction(() => {
    const el = document.querySelector('.register[data-id="b"]');
    return el && el.textContent.includes("Staff safety in the yard");
  });
  const bText = await page.locator('.register[data-id="b"]').textContent();
  check(!bText.includes("No purpose stated") && bText.includes("Review by 2099-01-31"), "saving the form clears the flag", bText);

  await page.goto(`${base}#/report`);
  await page.locator("#report-from").waitFor();
  await page.fill("#report-from", cfg.day);
  await page.fill("#report-to", cfg.day);
  await page.click('#report-filter button[type="submit"]');
  await page.locator("#report-chain").waitFor();
  const api = await page.evaluate(async (d) => (await fetch(`/api/report?from=${d}&to=${d}`)).json(), cfg.day);
  const a = api.cameras.find((c) => c.id === "a");
  const shown = await page.locator('.avail[data-id="a"]').textContent();
  check(shown === `${a.availability_percent.toFixed(2)} %`, "the page shows the API's availability", { shown, api: a.availability_percent });
  check(a.outage_count >= 2 && (await page.locator("table.outages tbody tr").count()) === api.cameras.reduce((n, c) => n + c.outages.length, 0), "every outage is listed", a.outage_count);
  check((await page.textContent("#report-chain")).startsWith("Intact"), "the audit chain is intact");
  check((await page.textContent("#report")).includes("Staff safety in the yard"), "the register on the report is the edited one");
  const htmlHref = await page.getAttribute("#report-html", "href");
  check(htmlHref.includes("format=html") && htmlHref.includes(`from=${cfg.day}`), "the download is the same period", htmlHref);
  check(errors.length === 0, "no script errors", errors);
  await shot("2-report");

  await page.emulateMedia({ media: "print" });
  check(await page.locator("#nav").isHidden() && await page.locator("#report-filter").isHidden(), "printing leaves off the menu and the form");
  check(await page.locator("#report table").first().isVisible(), "and keeps the tables");
  await shot("3-report-print");
  console.log(summary());
} finally {
  await close();
}
