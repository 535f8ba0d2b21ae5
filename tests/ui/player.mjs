// The export's offline player (player.html) in Debian's Chromium, opened from
// file:// with the network off, as from a USB stick: it plays the video, shows
// the local time of the picture (the manifest's zone, abbreviation, offset),
// steps frames, lists gaps, and checks the package (SHA-256 of every file and
// the Ed25519 signature) from files the user picks; a flipped byte and a
// swapped key are reported in plain words.
//
// node player.mjs '{"pkg": DIR, "work": DIR, "screens": DIR}'
// `pkg` is an export directory (left untouched; copies are made in `work`).

import { generateKeyPairSync, createHash, sign } from "node:crypto";
import { cpSync, readFileSync, readdirSync, writeFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { check, launch, summary } from "./common.mjs";

const cfg = JSON.parse(process.argv[2]);
const manifest = JSON.parse(readFileSync(join(cfg.pkg, "manifest.json"), "utf8"));

/** A copy of the package in `work/name`. */
function copy(name) {
  const d = join(cfg.work, name);
  cpSync(cfg.pkg, d, { recursive: true });
  return d;
}

/** An Ed25519 key pair from node's own crypto (OpenSSL), as raw bytes in hex. */
function keyPair() {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const raw = publicKey.export({ format: "jwk" }).x;
  return { privateKey, pubHex: Buffer.from(raw, "base64url").toString("hex") };
}

const good = copy("good");
if (!existsSync(join(good, "manifest.sig"))) {
  // Until the export signs its packages, sign this copy here with node's Ed25519
  // (OpenSSL) in the package's format, so the page's check has something real to
  // verify. Once exports are signed, the export's own signature is checked.
  const k = keyPair();
  writeFileSync(join(good, "signing-key.pub"), k.pubHex + "\n");
  const sig = sign(null, readFileSync(join(good, "manifest.json")), k.privateKey);
  writeFileSync(join(good, "manifest.sig"), sig.toString("hex") + "\n");
  console.log("note: package not signed by the export; signed here with node's Ed25519");
}
const files = (d) => readdirSync(d).map((n) => join(d, n));
const pubKey = readFileSync(join(good, "signing-key.pub"), "utf8").trim();
const fingerprint = createHash("sha256").update(Buffer.from(pubKey, "hex")).digest("hex");

// The local time the manifest gives for the first file's start, e.g.
// "2025-06-01T13:00:01.500+01:00 BST", split as the page shows it.
const first = manifest.cameras[0].files[0];
const localOf = (s) => {
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d\.\d{3})([+-]\d\d:\d\d) (.+)$/.exec(s);
  check(m !== null, `manifest local time parses: ${s}`);
  return { date: m[1], time: m[2], offset: m[3], zone: m[4] };
};
const start = localOf(manifest.local_times.cameras[0].files[0].presents.start);
const startMs = Date.parse(first.presents.start);

const { ctx, page, close } = await launch(["--host-resolver-rules=MAP * ~NOTFOUND"]);
try {
  await ctx.setOffline(true);
  const offNet = [];
  const watch = (p) => p.on("request", (r) => {
    if (!/^(file|blob|data):/.test(r.url())) offNet.push(r.url());
  });
  watch(page);
  ctx.on("page", watch);
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });

  const url = (dir, hash = "") => pathToFileURL(join(dir, "player.html")).href + hash;
  await page.goto(url(good));
  await page.locator("#clock-time").waitFor();

  // Paused on the first file at its presented start: the clock shows the manifest's
  // start in local time.
  await page.waitForFunction(() => document.getElementById("video").readyState >= 2, null, { timeout: 60000 });
  await page.waitForFunction(([ms, f]) => { const t = Number(document.getElementById("clock-time").dataset.ms); return t <= ms && t > ms - f; }, [startMs, cfg.frame_ms], { timeout: 30000 })
    .catch(() => {});
  const clock = async () => ({
    date: await page.textContent("#clock-date"),
    time: await page.textContent("#clock-time"),
    zone: await page.textContent("#clock-zone"),
    utc: await page.textContent("#clock-utc"),
    ms: Number(await page.getAttribute("#clock-time", "data-ms")),
  });
  const facts = await page.evaluate(() => {
    const v = document.getElementById("video");
    return { duration: v.duration, currentTime: v.currentTime,
             seekable: v.seekable.length ? [v.seekable.start(0), v.seekable.end(0)] : [] };
  });
  console.log(`note: video ${JSON.stringify(facts)}`);
  let c = await clock();
  check(c.date.endsWith(start.date), "clock shows the local date of the first frame", c);
  // The frame on screen is the one at or just before the presented start (frames are
  // 40 ms apart; the start need not fall on one).
  check(c.time.slice(0, 8) === start.time.slice(0, 8), `clock shows the local time ${start.time.slice(0, 8)}`, c);
  check(c.zone.startsWith(`${start.zone}, UTC${start.offset} (${manifest.time_zone})`), `clock names the zone ${start.zone} UTC${start.offset}`, c);
  check(c.ms <= startMs && c.ms > startMs - cfg.frame_ms, "clock's instant is the frame showing the manifest's presented start", { ms: c.ms, startMs });
  await page.screenshot({ path: join(cfg.screens, "1-opened.png"), fullPage: true });

  // Plays: media time advances and the clock follows it.
  const c0 = c, t0 = facts.currentTime;
  await page.click("#play");
  await page.waitForFunction(() => document.getElementById("video").currentTime > 1.2, null, { timeout: 90000 });
  await page.click("#play");
  await page.waitForFunction(() => document.getElementById("video").paused);
  // The clock follows painted frames, which may come a little after the pause:
  // polled until it agrees with media time (as checked below), then read.
  await page.waitForFunction(([ms0, t0, f]) => {
    const moved = Number(document.getElementById("clock-time").dataset.ms) - ms0;
    const want = (document.getElementById("video").currentTime - t0) * 1000;
    return moved <= want + f + 5 && moved >= want - 500;
  }, [c0.ms, t0, cfg.frame_ms], { timeout: 10000 }).catch(() => {});
  const t = await page.evaluate(() => document.getElementById("video").currentTime);
  c = await clock();
  // The painted frame may trail the position a little after a pause; the exact check
  // (clock = the picture's own instant) follows below.
  const moved = c.ms - c0.ms, want = (t - t0) * 1000;
  check(moved <= want + cfg.frame_ms + 5 && moved >= want - 500, "clock follows playback (as far as media time moved)", { t, t0, ms: c.ms, ms0: c0.ms });
  check(c.time !== start.time, "clock moved on while playing", c);
  await page.screenshot({ path: join(cfg.screens, "2-played.png"), fullPage: true });

  // Frame steps: one frame (40 ms at 25 fps) forward, then back. After the
  // seek, polled until the clock has moved by `want` ms (±2) or, with no
  // `want`, sits on a frame of the recording (t0 + n frames); then read.
  const stepped = async (button, want = null) => {
    const before = Number(await page.getAttribute("#clock-time", "data-ms"));
    await page.click(button);
    await page.waitForFunction((b) => Number(document.getElementById("clock-time").dataset.ms) !== b, before, { timeout: 30000 });
    await page.waitForFunction(([b, w, t0, f]) => {
      if (document.getElementById("video").seeking) return false;
      const ms = Number(document.getElementById("clock-time").dataset.ms);
      if (w !== null) return Math.abs(ms - b - w) <= 2;
      const off = (((ms - t0) % f) + f) % f;
      return off <= 1 || off >= f - 1;
    }, [before, want, cfg.t0_ms, cfg.frame_ms], { timeout: 10000 }).catch(() => {});
    return Number(await page.getAttribute("#clock-time", "data-ms")) - before;
  };
  // Land on a frame first (a pause can stop between frames).
  await stepped("#next-frame");
  const fwd = await stepped("#next-frame", 40);
  check(Math.abs(fwd - 40) <= 2, "one frame forward is 40 ms", fwd);
  const back = await stepped("#back-frame", -40);
  check(Math.abs(back + 40) <= 2, "one frame back is 40 ms", back);

  // The gap, in local time.
  const gap = manifest.local_times.cameras[0].gaps[0];
  check(gap !== undefined, "the recording has a gap");
  const gapsText = await page.textContent("#gaps");
  const g0 = localOf(gap.start), g1 = localOf(gap.end);
  check(gapsText.includes(`${g0.date} ${g0.time} ${g0.zone}`) && gapsText.includes(`${g1.time} ${g1.zone}`), "gaps are listed in local time", gapsText);

  // Checking the package: every file picked -> verified.
  const verdict = async () => {
    await page.waitForFunction(() => document.getElementById("verdict").dataset.state, null, { timeout: 120000 });
    return {
      state: await page.getAttribute("#verdict", "data-state"),
      text: await page.textContent("#verdict"),
      results: await page.textContent("#results"),
      rows: await page.$$eval("#files tbody tr", (rs) => rs.map((r) => [r.dataset.file, r.querySelector(".status").textContent])),
      fingerprint: await page.getAttribute("#verdict", "data-fingerprint"),
    };
  };
  const mp4s = manifest.cameras.flatMap((cam) => cam.files.map((f) => f.file));
  await page.setInputFiles("#pick-files", files(good));
  let v = await verdict();
  check(v.state === "ok" && v.text.startsWith("verified"), "the package verifies", v);
  check(v.rows.length === mp4s.length && v.rows.every(([, s]) => s === "verified"), "every file verified", v.rows);
  check(v.fingerprint === fingerprint, "the page shows the key's SHA-256 fingerprint", v.fingerprint);
  check(v.results.includes("signature valid"), "signature valid", v.results);
  // The video now plays from the picked (checked) file.
  check((await page.getAttribute("#video", "src")).startsWith("blob:"), "video plays from the picked file");
  await page.screenshot({ path: join(cfg.screens, "3-verified.png"), fullPage: true });

  // The clock against the picture itself: each frame of the gate shows its frame number
  // since t0 as bars (tests/media frame_code). Read from the picked file (a blob: the page
  // may read its pixels; a file: video would taint the canvas).
  // The frame number the picture shows, read in the page (also while polling).
  await page.evaluate(() => {
    window.__frameOnScreen = (bar) => {
      const v = document.getElementById("video");
      const c = document.createElement("canvas");
      c.width = v.videoWidth; c.height = v.videoHeight;
      const g = c.getContext("2d");
      g.drawImage(v, 0, 0);
      const px = g.getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < 10; i++) {
        const x = i * bar + bar / 2, y = Math.floor(c.height / 2);
        if (px[(y * c.width + x) * 4] > 128) n |= 1 << i;
      }
      return n;
    };
  });
  const onScreen = () => page.evaluate(([bar, t0, f]) => ({
    picture: t0 + window.__frameOnScreen(bar) * f,
    clock: Number(document.getElementById("clock-time").dataset.ms),
  }), [cfg.bar, cfg.t0_ms, cfg.frame_ms]);
  // Polled (the painted frame and the clock settle after a seek) until the clock
  // shows the picture's instant and the picture is at least `from` ms (the
  // checks below), or the timeout; then read and checked.
  const settled = (from = 0) => page.waitForFunction(([bar, t0, f, min]) => {
    const v = document.getElementById("video");
    if (v.seeking || v.readyState < 2) return false;
    const picture = t0 + window.__frameOnScreen(bar) * f;
    return picture >= min && Number(document.getElementById("clock-time").dataset.ms) === picture;
  }, [cfg.bar, cfg.t0_ms, cfg.frame_ms, from], { timeout: 10000, polling: 100 }).catch(() => {});
  await settled();
  let s = await onScreen();
  check(s.clock === s.picture, "the clock shows the instant of the picture on screen", s);
  await page.click("#next-frame");
  await settled(s.picture + cfg.frame_ms);
  const s2 = await onScreen();
  check(s2.picture === s.picture + cfg.frame_ms && s2.clock === s2.picture, "one frame on: picture and clock agree", s2);
  // Across the gap, into the second recording.
  await page.evaluate(() => { const v = document.getElementById("video"); v.currentTime += 5.3; });
  await settled(Date.parse(manifest.cameras[0].gaps[0].end));
  s = await onScreen();
  check(s.picture >= Date.parse(manifest.cameras[0].gaps[0].end), "moved past the gap", s);
  check(s.clock === s.picture, "after the gap the clock still shows the picture's instant", s);
  await page.screenshot({ path: join(cfg.screens, "3b-after-gap.png"), fullPage: true });

  // A flipped byte in one video, checked through the folder picker and the
  // chunked SHA-256 (the path for files too large for WebCrypto's one-shot digest).
  const bad = copy("tampered");
  cpSync(join(good, "manifest.sig"), join(bad, "manifest.sig"));
  cpSync(join(good, "signing-key.pub"), join(bad, "signing-key.pub"));
  const victim = first.file;
  const b = readFileSync(join(bad, victim));
  b[Math.floor(b.length / 2)] ^= 0x01;
  writeFileSync(join(bad, victim), b);
  await page.goto(url(bad, "#chunked"));
  await page.setInputFiles("#pick-folder", bad);
  v = await verdict();
  check(v.state === "bad" && v.text === `FAILED: file ${victim} does not match`, "a flipped byte fails the package, naming the file", v);
  check(v.results.includes(`FAILED: file ${victim} does not match`), `the failure names ${victim}`, v.results);
  check(v.rows.every(([f, s]) => (f === victim ? s.startsWith("FAILED") : s === "verified")), "only that file fails", v.rows);
  check(v.results.includes("signature valid"), "the signature itself still verifies", v.results);
  await page.screenshot({ path: join(cfg.screens, "4-tampered.png"), fullPage: true });

  // A swapped key: every file matches, the signature does not.
  const swapped = copy("swapped-key");
  cpSync(join(good, "manifest.sig"), join(swapped, "manifest.sig"));
  const forged = keyPair().pubHex + "\n";
  writeFileSync(join(swapped, "signing-key.pub"), forged);
  // SHA256SUMS lists the key too: a forger redoes that line, so only the signature tells.
  const sums = join(swapped, "SHA256SUMS");
  const forgedSum = createHash("sha256").update(forged).digest("hex");
  writeFileSync(sums, readFileSync(sums, "utf8").replace(/^[0-9a-f]{64}  signing-key\.pub$/m, `${forgedSum}  signing-key.pub`));
  await page.goto(url(swapped, "#chunked"));
  await page.setInputFiles("#pick-files", files(swapped));
  v = await verdict();
  check(v.rows.every(([, s]) => s === "verified"), "chunked SHA-256 verifies every intact file", v.rows);
  check(v.state === "bad" && v.text === "FAILED: signature invalid", "a swapped key: signature invalid", v);

  // A missing video.
  const missing = copy("missing");
  cpSync(join(good, "manifest.sig"), join(missing, "manifest.sig"));
  cpSync(join(good, "signing-key.pub"), join(missing, "signing-key.pub"));
  await page.goto(url(missing));
  await page.setInputFiles("#pick-files", files(missing).filter((f) => !f.endsWith(victim)));
  v = await verdict();
  check(v.state === "bad" && v.text === `FAILED: missing file: ${victim}`, "a missing video is reported", v);

  // H.265, which this Chromium cannot decode: said in words, not a black box.
  const hevc = manifest.cameras[1].files[0].file;
  await page.click(`#files tr[data-file="${hevc}"] button`);
  await page.waitForFunction(() => document.getElementById("video-error").textContent !== "", null, { timeout: 30000 });
  const said = await page.textContent("#video-error");
  check(said.includes(`${hevc} cannot be played in this browser: it is H.265`) && said.includes("intact"), "an undecodable H.265 file is explained (and said to be intact)", said);
  await page.screenshot({ path: join(cfg.screens, "5-hevc.png"), fullPage: true });

  // The October change: the two 01:30s, told apart by zone and offset, in the table,
  // the gap and the clock.
  await page.goto(url(cfg.dst));
  await page.waitForFunction(() => document.getElementById("video").readyState >= 2, null, { timeout: 60000 });
  const table = await page.textContent("#files tbody");
  check(table.includes("2025-10-26 01:30:00.000 BST (UTC+01:00)") && table.includes("2025-10-26 01:30:02.000 GMT (UTC+00:00)"),
    "the file runs from 01:30 BST to 01:30 GMT", table);
  const dstGaps = await page.textContent("#gaps");
  check(dstGaps.includes("01:30:02.000 BST (UTC+01:00) to 2025-10-26 01:30:00.000 GMT (UTC+00:00)"), "the hour between is a gap from 01:30 BST to 01:30 GMT", dstGaps);
  await page.waitForFunction(() => document.getElementById("clock-zone").textContent.startsWith("BST"), null, { timeout: 30000 }).catch(() => {});
  c = await clock();
  check(c.time.startsWith("01:30:00") && c.zone.startsWith("BST, UTC+01:00"), "the clock starts at 01:30 BST", c);
  await page.evaluate(() => { document.getElementById("video").currentTime = 3600.5; });
  await page.waitForFunction(() => document.getElementById("clock-zone").textContent.startsWith("GMT"), null, { timeout: 30000 }).catch(() => {});
  c = await clock();
  check(c.time.startsWith("01:30:00.") && c.zone.startsWith("GMT, UTC+00:00"), "an hour on, the clock shows 01:30 GMT", c);
  await page.screenshot({ path: join(cfg.screens, "6-october.png"), fullPage: true });

  check(offNet.length === 0, "no request left file:// (offline, nothing fetched)", offNet);
  check(errors.length === 0, "no script errors", errors);
  console.log(summary());
} finally {
  await close();
}
