// Times in the server's time zone and the signing key's fingerprint, in
// Chromium running in another zone (the Rust side sets TZ=Asia/Tokyo while the
// server is in Europe/London): the export form proposes and reads times in the
// server's zone and says which; times shown carry the zone's abbreviation, the
// repeated October hour shown twice distinctly; an admin sees the key's
// fingerprint beside the audit log, and a finished export names it.
//
//   node tests/ui/zone.mjs BASE_URL CONFIG_JSON
//
// CONFIG_JSON: {"admin": [name, pw], "zone": "Europe/London", "camera": id,
// "start": RFC 3339 (a second of recorded footage; the export runs from it for
// 2 s), "fingerprint": hex, "screens": dir}.

import { join } from "node:path";
import { check, launch, login, summary } from "./common.mjs";

const [base, cfgText] = process.argv.slice(2);
const cfg = JSON.parse(cfgText);
const { page, close } = await launch();
const shot = (n) => page.screenshot({ path: join(cfg.screens, `${n}.png`), fullPage: true });
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));

/** `yyyy-mm-ddThh:mm:ss` of `t` in the server's zone, as the check's own reference. */
function wallIn(t, zone) {
  const p = Object.fromEntries(new Intl.DateTimeFormat("en-GB", {
    timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(new Date(t)).map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day}T${p.hour}:${p.minute}:${p.second}`;
}

try {
  const browserZone = await page.evaluate(() => Intl.DateTimeFormat().resolvedOptions().timeZone);
  check(browserZone !== cfg.zone, "the browser runs in another zone than the server", browserZone);
  await login(page, base, cfg.admin);

  // The export form: proposed in the server's zone, says so, and reads what is typed there.
  await page.goto(`${base}#/export`);
  await page.locator("#export-end").waitFor();
  const label = await page.textContent('label[for="export-start"]');
  check(label.includes(cfg.zone), "the form names the server's zone", label);
  const proposed = await page.inputValue("#export-end");
  const nowThere = wallIn(Date.now(), cfg.zone);
  check(Math.abs(Date.parse(`${proposed}Z`) - Date.parse(`${nowThere}Z`)) < 120e3,
    "the proposed end is now on the server's clock, not the browser's", { proposed, nowThere });

  // The repeated hour of 26 October 2025 in London, shown twice distinctly.
  const dst = await page.evaluate(async () => {
    const f = await import("/js/format.js");
    return [f.dateTime("2025-10-26T00:30:00Z"), f.dateTime("2025-10-26T01:30:00Z"), f.dateTime("2025-07-01T12:00:00Z")];
  });
  check(dst[0] === "2025-10-26 01:30:00 BST" && dst[1] === "2025-10-26 01:30:00 GMT", "the two 01:30s of October are told apart", dst);
  check(dst[2] === "2025-07-01 13:00:00 BST", "summer times are BST", dst);

  const startWall = wallIn(cfg.start, cfg.zone);
  const endWall = wallIn(Date.parse(cfg.start) + 2000, cfg.zone);
  await page.check(`#export-form input[value="${cfg.camera}"]`);
  await page.fill("#export-start", startWall);
  await page.fill("#export-end", endWall);
  await page.fill("#export-reason", "incident 9: time zone check");
  await page.fill("#export-recipient", "PC 1234 Smith");
  await page.click("#export-form button[type=submit]");
  const card = page.locator("article.job").first();
  await page.waitForFunction(() => {
    const c = document.querySelector("article.job");
    return c && (c.classList.contains("done") || c.classList.contains("failed"));
  }, null, { timeout: 300000 });
  check(await card.evaluate((c) => c.classList.contains("done")), "the export finishes", await card.textContent());
  const id = await card.getAttribute("data-export");
  const job = await page.evaluate(async (i) => (await fetch(`/api/exports/${i}`)).json(), id);
  check(Date.parse(job.manifest.requested.start) === Date.parse(cfg.start),
    "the typed start was read in the server's zone", { typed: startWall, sent: job.manifest.requested.start, want: cfg.start });
  const title = await card.locator("h3").textContent();
  // The footage is from June (British Summer Time).
  check(title.includes(`${startWall.replace("T", " ")} BST`), "the job shows its range in the server's zone with the abbreviation", title);
  const grouped = cfg.fingerprint.match(/.{1,4}/g).join(" ");
  const signed = await card.locator("p.signed").textContent();
  check(signed.includes(grouped), "the finished export names the signing key's fingerprint", signed);
  await shot("1-export-signed");

  // The audit log: entry times in the server's zone, and the key's fingerprint.
  await page.goto(`${base}#/audit`);
  await page.locator("#signing-fingerprint").waitFor();
  const fp = (await page.textContent("#signing-fingerprint")).trim();
  check(fp === grouped, "an admin sees the signing key's fingerprint", { fp, grouped });
  const zoneFact = await page.textContent("#server-zone");
  check(zoneFact.startsWith(`${cfg.zone} (now GMT)`) || zoneFact.startsWith(`${cfg.zone} (now BST)`), "and the server's zone", zoneFact);
  await page.locator("#audit-results tbody tr").first().waitFor();
  const r = await page.evaluate(async () => (await (await fetch("/api/audit?action=export&limit=1")).json()));
  const entry = r.entries[0];
  const row = page.locator("#audit-results tbody tr").filter({ has: page.locator(`td:first-child:text-is("${entry.seq}")`) });
  const shown = await row.locator("td").nth(1).textContent();
  check(shown === `${wallIn(entry.time, cfg.zone).replace("T", " ")} GMT`, "audit times are the server's, with GMT", { shown, time: entry.time });
  await shot("2-audit-key");
  check(errors.length === 0, "no script errors", errors);
  console.log(summary());
} finally {
  await close();
}
