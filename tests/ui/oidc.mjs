// Single sign-on in Debian's Chromium against a real OpenID Provider
// (oidc-provider, see oidc_provider.mjs): the login page's "Sign in with …"
// button, the provider's login page, and the way back, for
//  - alice, whose callback's `state` is tampered with on the way: refused;
//  - alice again (the provider remembers her): lands as operator over camera a;
//  - mallory, whose only group maps to nothing: refused in plain words;
//  - the local admin through the ordinary form (break-glass).
//
//   node tests/ui/oidc.mjs BASE_URL CONFIG_JSON
//
// CONFIG_JSON: {"screens": dir, "label": button label, "local": [name, pw]}
// Prints "ok - ..." per check and "ui: N passed, 0 failed" at the end.

import { join } from "node:path";
import { check, launch, login, summary } from "./common.mjs";

const [base, cfgText] = process.argv.slice(2);
const cfg = JSON.parse(cfgText);
const { ctx, page, close } = await launch();
const shot = (n) => page.screenshot({ path: join(cfg.screens, `${n}.png`), fullPage: true });
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));

/** Clicks the button and, if the provider asks, logs in there as `name`. */
async function signIn(name) {
  await page.click("#sso-login");
  const atProvider = page.locator("input[name=login]");
  const back = page.waitForURL((u) => u.origin === base, { timeout: 60000 });
  const which = await Promise.race([
    atProvider.waitFor({ state: "visible" }).then(() => "provider"),
    back.then(() => "back"),
  ]);
  if (which === "provider") {
    check(!page.url().startsWith(base), "the button leads to the provider's login page", page.url());
    await shot(`provider-login-${name}`);
    await page.fill("input[name=login]", name);
    await page.fill("input[name=password]", "any password");
    await page.click("button[type=submit]");
    await page.waitForURL((u) => u.origin === base, { timeout: 60000 });
  }
}

try {
  await page.goto(base);
  await page.locator("#login-view").waitFor({ state: "visible" });
  const button = page.locator("#sso-login");
  await button.waitFor({ state: "visible" });
  check((await button.textContent()) === `Sign in with ${cfg.label}`, "the login page offers single sign-on", await button.textContent());
  await shot("1-login-page");

  // 1. The provider's redirect back, with its state changed on the way. Playwright
  // does not route the requests of a redirect chain, so the chain that starts with
  // the provider's login form is followed here (with the browser's cookies) up to
  // the redirect to cleannvr, which the browser then gets with a forged state.
  let tampered = false;
  let hadCode = false;
  await page.route((u) => u.origin !== base, async (route) => {
    if (route.request().method() !== "POST") return route.continue();
    let resp = await route.fetch({ maxRedirects: 0 });
    let at = route.request().url();
    let loc = resp.headers()["location"];
    for (let hops = 0; loc && !new URL(loc, at).href.startsWith(base) && hops < 10; hops++) {
      at = new URL(loc, at).href;
      loc = (await page.request.get(at, { maxRedirects: 0 })).headers()["location"];
    }
    if (!loc) return route.fulfill({ response: resp });
    const u = new URL(loc, at);
    hadCode = Boolean(u.searchParams.get("code") && u.searchParams.get("state"));
    u.searchParams.set("state", "forged-state");
    tampered = true;
    await route.fulfill({ status: 303, headers: { location: u.href } });
  });
  await signIn("alice");
  await page.unrouteAll();
  check(tampered && hadCode, "the provider's redirect back (a code and the state) was tampered with");
  await page.locator("#login-view").waitFor({ state: "visible" });
  await page.waitForFunction(() => document.querySelector("#login-error").textContent !== "");
  const stateMsg = await page.textContent("#login-error");
  check(/could not be checked/.test(stateMsg), "a tampered state is refused in plain words", stateMsg);
  check(await page.locator("#nav").isHidden(), "no session after a tampered state");
  check(!page.url().includes("sso_error"), "the reason code is cleared from the address bar", page.url());
  await shot("2-tampered-state");

  // 2. alice again: the provider knows her; she lands with her mapped role.
  await signIn("alice");
  await page.locator("#nav").waitFor({ state: "visible" });
  const who = await page.textContent("#who");
  check(who.includes("alice") && /operator/i.test(who), "alice is logged in as operator", who);
  const me = await page.evaluate(async () => (await fetch("/api/me")).json());
  check(me.user.role === "operator" && JSON.stringify(me.user.cameras) === '["a"]', "her session has the mapped role and cameras", me.user);
  const cams = await page.evaluate(async () => (await fetch("/api/cameras")).json());
  const ids = (cams.cameras || cams).map((c) => c.id);
  check(JSON.stringify(ids) === '["a"]', "she sees only camera a", ids);
  check(await page.locator('#nav a[data-view="users"]').isHidden(), "no admin menu for an operator");
  await shot("3-alice-operator");
  await page.click("#logout");
  await page.locator("#login-view").waitFor({ state: "visible" });

  // 3. mallory (groups: finance) is refused and told why. The provider forgets alice first.
  await ctx.clearCookies();
  await page.goto(base);
  await page.locator("#sso-login").waitFor({ state: "visible" });
  await signIn("mallory");
  await page.locator("#login-view").waitFor({ state: "visible" });
  await page.waitForFunction(() => document.querySelector("#login-error").textContent !== "");
  const roleMsg = await page.textContent("#login-error");
  check(roleMsg.includes(`You signed in with ${cfg.label}, but you are not in any group that may use cleannvr`), "an unmapped person is refused in plain words", roleMsg);
  check(await page.locator("#nav").isHidden(), "no session for an unmapped person");
  await shot("4-mallory-refused");

  // 4. Break-glass: the local admin still logs in with the form.
  await login(page, base, cfg.local);
  const who2 = await page.textContent("#who");
  check(who2.includes(cfg.local[0]) && /admin/i.test(who2), "the local admin still logs in", who2);
  await shot("5-local-admin");
  check(errors.length === 0, "no script errors", errors);
  console.log(summary());
} finally {
  await close();
}
